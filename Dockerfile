# syntax=docker/dockerfile:1
# edgerelay: a static binary on an empty image, running as nobody.
#   docker build -t edgerelay .
#   docker run -p 587:587 -p 465:465 -v edgerelay-data:/data edgerelay
# The base images are build arguments, for a mirror or a pinned digest:
#   docker build --build-arg GO_IMAGE=mirror.example.org/library/golang:1.26-bookworm \
#     --build-arg RUNTIME_IMAGE=scratch -t edgerelay .
#   (or GO_IMAGE=golang:1.26-bookworm@sha256:…)
# RUNTIME_IMAGE must be an empty or static base (scratch, a distroless "static"):
# the binary is static and brings its own CA bundle.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=scratch

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces go-smtp with the patched copy here (third_party/go-smtp/EDGERELAY.md).
COPY third_party/ third_party/
RUN go mod download
COPY . .
ARG VERSION=dev
# lambda.norpc: aws-lambda-go without its go1.x RPC mode (retired by AWS; the
# image and the zip run on the Runtime API). That mode registers net/rpc
# handlers by reflection, which makes the linker keep every exported method of
# every type: 11.6 MB of the binary.
RUN CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/edgerelay . \
 && mkdir -p /out/data \
 && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# ---- runtime (scripts/image-test.sh builds this stage from a local binary)
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/edgerelay /edgerelay
COPY --from=build --chown=65534:65534 /out/data /data
# Docker lets unprivileged processes bind ports below 1024 inside a
# container (net.ipv4.ip_unprivileged_port_start=0), so nobody can listen
# on 587 and 465.
USER 65534:65534
ENV RELAY_DATA_DIR=/data
VOLUME /data
EXPOSE 587 465 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["/edgerelay", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/edgerelay"]
