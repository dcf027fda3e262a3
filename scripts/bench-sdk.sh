#!/usr/bin/env bash
# Builds the hello example of every SDK language with `omniforge skill build` and measures a
# fresh instance + invoke of each in process (the runtime bench's `guests` section), plus
# each language's component size. Prints Markdown for docs/performance.md.
#
#   scripts/bench-sdk.sh            # needs componentize-py, Node.js/npm and zig, like the tests
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"

cargo build --release -p omniforge --quiet
omniforge="$CARGO_TARGET_DIR/release/omniforge"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

guests="hello-rust=$CARGO_TARGET_DIR/omniforge-guests/wasm32-wasip2/release/hello.wasm"
for lang in python js c; do
    cp -r "example-skills/$lang/hello" "$work/$lang"
    rm -rf "$work/$lang/build" "$work/$lang/node_modules"
    start=$(date +%s)
    "$omniforge" skill build "$work/$lang" >/dev/null
    echo "built hello-$lang in $(( $(date +%s) - start )) s" >&2
    guests="$guests;hello-$lang=$work/$lang/build/skill.wasm"
done
OMNIFORGE_BENCH_GUESTS="$guests" cargo bench -p omniforge-runtime --bench runtime -- guests
