#!/usr/bin/env bash
# Builds an example skill and runs it once with `omniforge run`.
#   ./scripts/run-example.sh                          # hello with {"name": "Ada"}
#   ./scripts/run-example.sh text-stats '{"text": "a b a"}'
#   ./scripts/run-example.sh kv-counter '{"key": "k"}' --kv
# Extra arguments after the input go to `omniforge run` (see `omniforge run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

skill="${1:-hello}"
input="${2:-{\"name\": \"Ada\"\}}"
shift $(( $# < 2 ? $# : 2 ))

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"
guest_target="$CARGO_TARGET_DIR/omniforge-guests"

# wasip2 for components; wasip1 for the preview1-adapter tests.
for target in wasm32-wasip2 wasm32-wasip1; do
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
done
cargo build --quiet --release --locked --target wasm32-wasip2 \
    --manifest-path example-skills/rust/Cargo.toml --target-dir "$guest_target" -p "$skill"
cargo run --quiet --release --locked -p omniforge -- \
    run "$guest_target/wasm32-wasip2/release/${skill//-/_}.wasm" --input "$input" "$@"
