#!/usr/bin/env bash
# A stand-in for docker.io/library/node:20-bookworm-slim on machines that reach Debian's mirror and the npm registry
# but not Docker Hub (the test machines): Debian bookworm (debootstrap, minbase) plus this machine's Node 20 and npm,
# laid out as in the official image. Then build Keelson's image from it with buildah's chroot isolation (no container
# runtime needed):
#
#   test/install/offline-base-image.sh localhost/node:20-bookworm-slim
#   buildah bud --isolation chroot --build-arg NODE_IMAGE=localhost/node:20-bookworm-slim -t localhost/keelson:test -f Containerfile .
#   KEELSON_INSTALL_IMAGE=localhost/keelson:test npx vitest run test/install/install.test.ts
#
# Needs root, debootstrap and buildah (Debian packages). KEELSON_BASE_ROOTFS=DIR copies an existing debootstrap
# directory instead of making one. Behind a TLS-intercepting proxy, KEELSON_BASE_EXTRA_CA=FILE (default: this
# machine's NODE_EXTRA_CA_CERTS) is added to the image's trusted CAs (npm and git in the build then trust it too).
set -euo pipefail
name="${1:-localhost/node:20-bookworm-slim}"
rootfs="$(mktemp -d /tmp/keelson-node-base-XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
if [ -n "${KEELSON_BASE_ROOTFS:-}" ]; then
  cp -a "$KEELSON_BASE_ROOTFS/." "$rootfs/"
else
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
fi
node_bin="$(readlink -f "$(command -v node)")"
npm_dir="$(dirname "$(readlink -f "$(command -v npm)")")/.."
"$node_bin" -e 'if (!process.version.startsWith("v20.")) { console.error(`Node 20 needed, this is ${process.version}`); process.exit(1) }'
install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$(readlink -f "$npm_dir")" "$rootfs/usr/local/lib/node_modules/npm"
# Node's headers, as the official image has them: node-gyp builds native modules without downloading them.
node_include="$(dirname "$(dirname "$node_bin")")/include/node"
cp -a "$node_include" "$rootfs/usr/local/include/node"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
extra_ca="${KEELSON_BASE_EXTRA_CA:-${NODE_EXTRA_CA_CERTS:-}}"
ca_env=()
if [ -n "$extra_ca" ]; then
  install -D -m 0644 "$extra_ca" "$rootfs/usr/local/share/ca-certificates/extra-ca.crt"
  ca_env=(--env NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/extra-ca.crt)
fi
rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
ctr="$(buildah from scratch)"
buildah copy "$ctr" "$rootfs" / >/dev/null
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${ca_env[@]}" --cmd node "$ctr"
buildah commit --rm "$ctr" "$name" >/dev/null
echo "$name"
