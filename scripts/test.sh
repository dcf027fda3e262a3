#!/usr/bin/env bash
# Runs the whole test suite. The guests (example skills and hostile test programs) are built
# from source for wasm32-wasip2 by host/test-programs/build.rs as part of the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build caches live outside the clone so CI runs on the same machine reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"

# wasip2 for components; wasip1 for the preview1-adapter tests.
for target in wasm32-wasip2 wasm32-wasip1; do
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
done

cargo test --workspace --locked "$@"
