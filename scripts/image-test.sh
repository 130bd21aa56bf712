#!/usr/bin/env bash
# Builds the Dockerfile's runtime stage with buildah (no Docker engine here,
# and public base images cannot be pulled: the build stage is replaced by a
# locally built static binary) and runs the image's binary once.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
ST="--root $W/storage --runroot $W/runroot --storage-driver vfs"
mkdir -p "$W/ctx/out/data"
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -X main.version=image-test' -o "$W/ctx/out/edgerelay" .
cp /etc/ssl/certs/ca-certificates.crt "$W/ctx/out/ca-certificates.crt"
{ echo 'FROM scratch AS build'; echo 'COPY out/ /out/'; sed -n '/^# ---- runtime/,$p' Dockerfile; } > "$W/ctx/Dockerfile"
buildah $ST bud --format docker --isolation chroot -q -t localhost/edgerelay:test "$W/ctx" >/dev/null
CID=$(buildah $ST from localhost/edgerelay:test)
out=$(buildah $ST run --isolation chroot "$CID" /edgerelay version)
echo "$out"
[ "$out" = "edgerelay image-test" ]
hc=$(buildah $ST inspect --format "{{.Docker.Config.User}} {{.Docker.Config.Entrypoint}} {{.Docker.Config.Healthcheck.Test}}" localhost/edgerelay:test)
echo "$hc"
case "$hc" in "65534:65534 [/edgerelay] [CMD /edgerelay healthcheck]") ;; *) echo "image config unexpected"; exit 1 ;; esac
buildah $ST rm "$CID" >/dev/null
echo "image ok"
