#!/usr/bin/env bash
# Re-vendors ReDoc's standalone bundle from the npm registry into host/server/assets/redoc,
# so /redoc works without any CDN. Pinned to 2.x: 3.x ships an ES module without the global
# `Redoc` the page uses. Checks the bundle against the digest recorded below.
set -euo pipefail
VERSION=2.5.4
SHA256=dcaf76612bc4a3fbcc923a8966dee2f6146a5f32e5ce1b6f02dd60cbbf89500b
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "redoc@$VERSION" >/dev/null && tar xzf "redoc-$VERSION.tgz")
echo "$SHA256  $work/package/bundles/redoc.standalone.js" | sha256sum --check --quiet
dest="$root/host/server/assets/redoc"
mkdir -p "$dest"
cp "$work/package/bundles/redoc.standalone.js" "$work/package/bundles/redoc.standalone.js.LICENSE.txt" "$dest/"
cp "$work/package/LICENSE" "$dest/LICENSE"
echo "vendored redoc $VERSION into $dest"
