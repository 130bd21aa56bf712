#!/usr/bin/env bash
# Builds the Dockerfile's runtime stage with buildah (no Docker engine here,
# and public base images cannot be pulled: the build stage is replaced by a
# locally built static binary), runs the image's binary once, checks the
# image's user, entrypoint and health check, measures its size (fails past
# 20 MB compressed, the size a registry stores and a pull transfers; prints
# the unpacked size too), and builds it once more with RUNTIME_IMAGE set to
# a local base, as a mirror or a pinned digest would be.
set -euo pipefail
cd "$(dirname "$0")/.."
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
ST="--root $W/storage --runroot $W/runroot --storage-driver vfs"
LIMIT=${IMAGE_SIZE_LIMIT:-20000000}
mkdir -p "$W/ctx/out/data"
CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w -X main.version=image-test' -o "$W/ctx/out/edgerelay" .
cp /etc/ssl/certs/ca-certificates.crt "$W/ctx/out/ca-certificates.crt"
# The Dockerfile's global ARGs (the base images), a local build stage, and
# its runtime stage as it is.
{ sed -n '/^FROM /q; /^ARG /p' Dockerfile; echo 'FROM scratch AS build'; echo 'COPY out/ /out/'
  sed -n '/^# ---- runtime/,$p' Dockerfile; } > "$W/ctx/Dockerfile"
grep -q '^FROM ${RUNTIME_IMAGE}' "$W/ctx/Dockerfile" || { echo "the runtime stage is not FROM \${RUNTIME_IMAGE}"; exit 1; }
buildah $ST bud --format docker --isolation chroot -q -t localhost/edgerelay:test "$W/ctx" >/dev/null
CID=$(buildah $ST from localhost/edgerelay:test)
out=$(buildah $ST run --isolation chroot "$CID" /edgerelay version)
echo "$out"
[ "$out" = "edgerelay image-test" ]
hc=$(buildah $ST inspect --format "{{.Docker.Config.User}} {{.Docker.Config.Entrypoint}} {{.Docker.Config.Healthcheck.Test}}" localhost/edgerelay:test)
echo "$hc"
case "$hc" in "65534:65534 [/edgerelay] [CMD /edgerelay healthcheck]") ;; *) echo "image config unexpected"; exit 1 ;; esac
# The image's configuration as the binary reads it: valid, /data from the
# image's ENV, running as nobody.
cfgout=$(buildah $ST run --isolation chroot --user 65534:65534 "$CID" /edgerelay config)
grep -qx 'RELAY_DATA_DIR=/data (set)' <<<"$cfgout" || { echo "edgerelay config in the image:"; echo "$cfgout"; exit 1; }
buildah $ST rm "$CID" >/dev/null

# Size: the layers as a registry stores them (gzip) and unpacked.
buildah $ST push -q --compression-format gzip localhost/edgerelay:test "oci:$W/oci:test"
buildah $ST push -q --disable-compression localhost/edgerelay:test "dir:$W/dir"
sizes=$(python3 - "$W" <<'PY'
import json, sys, os
w = sys.argv[1]
idx = json.load(open(os.path.join(w, "oci/index.json")))
blob = lambda d: os.path.join(w, "oci/blobs", *d.split(":"))
man = json.load(open(blob(idx["manifests"][0]["digest"])))
packed = sum(l["size"] for l in man["layers"])
dman = json.load(open(os.path.join(w, "dir/manifest.json")))
unpacked = sum(l["size"] for l in dman["layers"])
print(packed, unpacked)
PY
)
read -r packed unpacked <<<"$sizes"
awk -v p="$packed" -v u="$unpacked" -v l="$LIMIT" 'BEGIN { printf "image size: %.1f MB compressed (registry, pull), %.1f MB unpacked; limit %.1f MB compressed\n", p/1e6, u/1e6, l/1e6 }'
[ "$packed" -le "$LIMIT" ] || { echo "image too large: $packed bytes compressed > $LIMIT"; exit 1; }

# RUNTIME_IMAGE from a local base, as a mirror or a pinned digest: the
# result is built on it.
mkdir -p "$W/base" && echo edgerelay-base > "$W/base/base-marker"
printf 'FROM scratch\nCOPY base-marker /base-marker\n' > "$W/base/Dockerfile"
buildah $ST bud --format docker --isolation chroot -q -t localhost/base:test "$W/base" >/dev/null
buildah $ST bud --format docker --isolation chroot -q --build-arg RUNTIME_IMAGE=localhost/base:test -t localhost/edgerelay:onbase "$W/ctx" >/dev/null
CID=$(buildah $ST from localhost/edgerelay:onbase)
MNT=$(buildah $ST mount "$CID")
[ "$(cat "$MNT/base-marker")" = edgerelay-base ] && [ -x "$MNT/edgerelay" ] || { echo "RUNTIME_IMAGE was not used as the base"; exit 1; }
buildah $ST umount "$CID" >/dev/null; buildah $ST rm "$CID" >/dev/null
echo "RUNTIME_IMAGE build arg ok"
echo "image ok"
