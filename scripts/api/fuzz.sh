#!/usr/bin/env bash
# API contract check: validates openapi.yaml, then fuzzes a running server
# with Schemathesis (every default check: no 5xx, documented status codes,
# content types, headers and bodies; valid input accepted, invalid rejected).
# Runs against SQLite, and against PostgreSQL when USERAPI_TEST_POSTGRES_URL
# is set (scripts/with-postgres.sh). Bounded: deterministic generation, fixed example count.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${USERAPI_BIN:-$root/.build/debug/userapi}"
examples="${FUZZ_EXAMPLES:-60}"

tools="$("$root/scripts/tools/ensure-venv.sh")"

[[ -x "$bin" ]] || { echo "fuzz: $bin not found; run 'make build' first" >&2; exit 1; }
"$tools/openapi-spec-validator" "$root/Sources/UserAPI/Resources/openapi.yaml"

work="$(mktemp -d /tmp/userapi-fuzz.XXXXXX)"
pid=""
cleanup() {
  [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fuzz() { # $1 = label, $2 = database url
  local port token status=0
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  token="fuzz-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  AUTH_TOKENS="$token" DATABASE_URL="$2" HTTP_PORT="$port" LOG_ACCESS=false LOG_FORMAT=json \
    "$bin" serve >"$work/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "fuzz: $1 on 127.0.0.1:$port ($examples examples per operation, deterministic)"
  (cd "$work" && "$tools/schemathesis" --config-file "$root/scripts/api/schemathesis.toml" run \
    "http://127.0.0.1:$port/openapi.yaml" -H "Authorization: Bearer $token" \
    --max-examples "$examples" --generation-deterministic --no-color) || status=$?
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "fuzz: the server died during the run:" >&2; tail -20 "$work/$1.log" >&2; status=1
  fi
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
  return "$status"
}

fuzz sqlite "sqlite:$work/fuzz.sqlite"
if [[ -n "${USERAPI_TEST_POSTGRES_URL:-}" ]]; then
  fuzz postgres "$USERAPI_TEST_POSTGRES_URL"
else
  echo "fuzz: USERAPI_TEST_POSTGRES_URL not set, PostgreSQL run skipped (make test-api sets it)"
fi
