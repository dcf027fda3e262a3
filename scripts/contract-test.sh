#!/usr/bin/env bash
# The API contract check: schemathesis (PyPI, pinned below) runs every check (all are on by
# default; scripts/contract/schemathesis.toml names the few exclusions) against every
# operation of the OpenAPI document, on a live `omniforge serve` of its own — its own data
# directory, tenant and credentials — so nothing it deletes or revokes can end the run early
# or touch anything else. Exits non-zero on any failure. Part of ./scripts/test.sh.
#
# The credential is a JWT for the tenant's owner: schemathesis may revoke API keys it finds
# (that is part of what it tests), but tokens cannot be revoked. Its scope is every
# permission but `owner:manage`, so the run cannot make someone else an owner and then demote
# or disable this one: it keeps its access to the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omniforge/target}"

if [ "$(schemathesis --version 2>/dev/null | awk '{print $NF}')" != "$SCHEMATHESIS_VERSION" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --locked --quiet -p omniforge
omniforge="$CARGO_TARGET_DIR/debug/omniforge"

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    # OMNIFORGE_CONTRACT_LOGS=DIR keeps the server's log for a look at what happened.
    [ -n "${OMNIFORGE_CONTRACT_LOGS:-}" ] && cp "$work/serve.log" "$OMNIFORGE_CONTRACT_LOGS/"
    rm -rf "$work"
}
trap cleanup EXIT

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export OMNIFORGE_DATA_DIR="$work/data"
export OMNIFORGE_JWT_ISSUER="https://contract.test"
export OMNIFORGE_JWT_AUDIENCE="omniforge-contract"
export OMNIFORGE_JWT_HS256_SECRET="$secret"
export OMNIFORGE_LISTEN="127.0.0.1:0"
# Secrets can be set, so their routes answer beyond 503 secrets-not-configured.
export OMNIFORGE_SECRETS_KEY="$(head -c 32 /dev/urandom | base64)"
# schemathesis sends requests without credentials and with wrong ones on purpose (ignored
# auth, missing header): the per-address limit of failed authentications would answer them
# 429 after a while, which lib tests cover; here every answer must be the documented one.
export OMNIFORGE_RATE_FAILED_AUTH_PER_MINUTE=0
export OMNIFORGE_LOG="${OMNIFORGE_LOG:-warn}"

"$omniforge" admin bootstrap --tenant contract --email owner@contract.test >/dev/null
"$omniforge" serve >"$work/serve.out" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 100); do
    grep -q '^listening on ' "$work/serve.out" 2>/dev/null && break
    sleep 0.1
done
base=$(sed -n 's/^listening on //p' "$work/serve.out")
[ -n "$base" ] || { cat "$work/serve.log" >&2; echo "error: the server did not start" >&2; exit 1; }

token=$(python3 - "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
def b64(data): return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
now = int(time.time())
claims = b64(json.dumps({"iss": "https://contract.test", "aud": "omniforge-contract",
                         "sub": "owner@contract.test", "tenant": "contract",
                         "scope": "tenant:manage tenant:read tenant:export user:read user:manage "
                                  "apikey:manage audit:read skill:read skill:publish skill:invoke "
                                  "agent:write task:read task:write",
                         "iat": now, "exp": now + 86400}).encode())
signature = hmac.new(sys.argv[1].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
print(f"{header}.{claims}.{b64(signature)}")
PY
)

echo "schemathesis $SCHEMATHESIS_VERSION against $base"
status=0
schemathesis --config-file scripts/contract/schemathesis.toml run "$base/openapi.json" \
    --header "Authorization: Bearer $token" --workers 1 \
    --no-color || status=$?
if [ "$status" -ne 0 ] && grep -q ' ERROR \| panicked' "$work/serve.log"; then
    echo "--- server log (errors) ---" >&2
    grep ' ERROR \| panicked' "$work/serve.log" | tail -20 >&2
fi
exit "$status"
