#!/usr/bin/env bash
# Assembles a build context for Containerfile.prebuilt: the given gatehouse binary, the
# shared libraries `ldd` says it links (and nothing else), the host's CA bundle, a
# `nonroot` user (65532) and an empty data directory.
# usage: deploy/container/prebuilt.sh BINARY CONTEXT_DIR
set -euo pipefail
bin=${1:?usage: prebuilt.sh BINARY CONTEXT_DIR}
out=${2:?usage: prebuilt.sh BINARY CONTEXT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$out"
mkdir -p "$out/rootfs/usr/local/bin" "$out/rootfs/etc/gatehouse" "$out/rootfs/tmp" "$out/data"
chmod 1777 "$out/rootfs/tmp"
install -m 0755 "$bin" "$out/rootfs/usr/local/bin/gatehouse"
# Every library the dynamic linker would load, at the path it loads it from.
ldd "$bin" | awk '/=> \// {print $3} /^\s*\/.*ld-linux/ {print $1}' | while read -r lib; do
  mkdir -p "$out/rootfs$(dirname "$lib")"
  cp -L "$lib" "$out/rootfs$lib"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$out/rootfs/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$out/rootfs/etc/ssl/certs/"
fi
echo 'root:x:0:0:root:/root:/sbin/nologin' > "$out/rootfs/etc/passwd"
echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >> "$out/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$out/rootfs/etc/group"
cp "$here/Containerfile.prebuilt" "$out/Containerfile"
echo "context ready: $out (build with: buildah bud --format docker -t gatehouse $out)"
