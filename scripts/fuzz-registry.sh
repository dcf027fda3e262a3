#!/usr/bin/env bash
# Fuzzes package reading (registry/fuzz, target read_package) for a while.
#   ./scripts/fuzz-registry.sh [seconds]      default 300
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Seeds the
# corpus with real packages of the example skills, packed by the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"
guests="$CARGO_TARGET_DIR/omniforge-guests/wasm32-wasip2/release"
corpus=registry/fuzz/corpus/read_package
mkdir -p "$corpus"

# The guests and the CLI are built by the normal build.
cargo build --quiet --locked -p omniforge -p omniforge-test-programs
for example in hello text-stats kv-counter http-get; do
    "$CARGO_TARGET_DIR/debug/omniforge" skill pack "example-skills/rust/$example" \
        --component "$guests/${example//-/_}.wasm" --out "$corpus/$example.zip" >/dev/null
done

cd registry/fuzz
# A separate target dir: sanitizer-instrumented builds must not evict the normal ones.
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz" cargo +nightly fuzz run read_package \
    "corpus/read_package" -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -max_len=4194304
