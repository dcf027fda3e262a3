#!/usr/bin/env bash
# Runs the whole test suite: every test binary of every crate, even after one fails, then the
# API contract check (schemathesis against a live server), then one summary line with the
# passed, failed and skipped counts, and what was skipped and why.
#
# The guests (example skills and hostile test programs) are built from source for
# wasm32-wasip2 by host/test-programs/build.rs as part of the build. PostgreSQL and Redis are
# used when OMNIFORGE_TEST_DATABASE_URL / OMNIFORGE_TEST_REDIS_URL name them, or when they
# answer at their defaults (127.0.0.1:5432, database `test`, user `postgres`; 127.0.0.1:6379).
# Under CI=true a missing service or toolchain fails the run instead of skipping tests.
set -uo pipefail
cd "$(dirname "$0")/.."

# Build caches live outside the clone so CI runs on the same machine reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"

# wasip2 for components; wasip1 for the preview1-adapter tests.
for target in wasm32-wasip2 wasm32-wasip1; do
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
done

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if [ -z "${OMNIFORGE_TEST_DATABASE_URL:-}" ] && answers 127.0.0.1 5432; then
    export OMNIFORGE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
fi
if [ -z "${OMNIFORGE_TEST_REDIS_URL:-}" ] && answers 127.0.0.1 6379; then
    export OMNIFORGE_TEST_REDIS_URL="redis://127.0.0.1:6379"
fi
if [ "${CI:-}" = "true" ] && [ -z "${OMNIFORGE_TEST_DATABASE_URL:-}" ]; then
    echo "error: under CI=true the PostgreSQL tests cannot be skipped: no PostgreSQL answers" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMNIFORGE_TEST_SKIPS="$work/skips"
: >"$OMNIFORGE_TEST_SKIPS"
log="$work/cargo.log"

echo "PostgreSQL: ${OMNIFORGE_TEST_DATABASE_URL:-not used}; Redis: ${OMNIFORGE_TEST_REDIS_URL:-not used}"
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
cargo_status=${PIPESTATUS[0]}

contract_status=0
if [ "$#" -eq 0 ] || [ "${OMNIFORGE_CONTRACT_TEST:-}" = "1" ]; then
    ./scripts/contract-test.sh 2>&1 | tee "$work/contract.log"
    contract_status=${PIPESTATUS[0]}
else
    echo "the API contract check (scripts/contract-test.sh) runs only for the whole suite" \
        "(no cargo test arguments)" >>"$OMNIFORGE_TEST_SKIPS.notes"
fi

# Totals of every "test result:" line, failures of binaries that never ran their tests.
read -r passed failed ignored < <(awk '
    /^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed;?$/) p += $i
            if ($(i+1) ~ /^failed;?$/) f += $i
            if ($(i+1) ~ /^ignored;?$/) g += $i
        }
    }
    END { printf "%d %d %d\n", p, f, g }' "$log")
broken=$(grep -c '^error: could not compile' "$log" || true)
skipped=$(sort "$OMNIFORGE_TEST_SKIPS" | uniq -c | sort -rn | awk '{ n = $1; $1 = ""; printf "%s%d x%s", sep, n, $0; sep = "; " }')
skip_count=$(wc -l <"$OMNIFORGE_TEST_SKIPS")
contract=$([ "$contract_status" -eq 0 ] && echo "API contract ok" || echo "API contract FAILED")
[ -s "$OMNIFORGE_TEST_SKIPS.notes" ] && contract="API contract not run"

summary="tests: $passed passed, $failed failed, $skip_count skipped, $ignored ignored"
[ "$broken" -gt 0 ] && summary="$summary, $broken crates did not compile"
summary="$summary; $contract"
[ "$skip_count" -gt 0 ] && summary="$summary; skipped: $skipped"
echo
echo "$summary"

if [ "$cargo_status" -ne 0 ] || [ "$contract_status" -ne 0 ]; then
    exit 1
fi
