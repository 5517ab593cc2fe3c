#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server: initdb into a temp dir
# (as an unprivileged user when started as root, since postgres refuses to run
# as root), listen on a free loopback port only, export the URL, run the
# command, stop the server and delete the data. Exit status is the command's.
#
#   scripts/with-postgres.sh swift test
#
# Exports USERAPI_TEST_POSTGRES_URL=postgres://userapi:<random>@127.0.0.1:<port>/userapi
# plus PGDATA_DIR, PG_BIN and PG_PORT for tests that stop/start the server (outage tests).
# The server also speaks TLS with a certificate from a throwaway CA:
# USERAPI_TEST_POSTGRES_CA is that CA, USERAPI_TEST_OTHER_CA one that did not sign it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

pg_bin="${PG_BIN:-}"
if [[ -z "$pg_bin" ]]; then
  for dir in /usr/lib/postgresql/*/bin; do [[ -x "$dir/initdb" ]] && pg_bin="$dir"; done
fi
if [[ -z "$pg_bin" ]]; then
  "$root/scripts/tools/ensure-apt.sh" postgresql
  for dir in /usr/lib/postgresql/*/bin; do [[ -x "$dir/initdb" ]] && pg_bin="$dir"; done
fi
[[ -n "$pg_bin" ]] || { echo "with-postgres: no PostgreSQL server binaries found" >&2; exit 1; }

run_as=()
if [[ "$(id -u)" -eq 0 ]]; then
  # postgres will not run as root; use the 'postgres' system user (created by the package) or nobody.
  pg_user=postgres
  id "$pg_user" >/dev/null 2>&1 || pg_user=nobody
  run_as=(setpriv --reuid="$pg_user" --regid="$(id -g "$pg_user")" --clear-groups --)
fi

work="$(mktemp -d /tmp/userapi-pg.XXXXXX)"
chmod 755 "$work"
data="$work/data"
port="$(python3 "$root/scripts/harness.py" free-port)"
password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
printf '%s\n' "$password" > "$work/pwfile"
# TLS: a CA, and a server certificate for 127.0.0.1/localhost signed by it.
tls="$work/tls"
mkdir -p "$tls"
openssl_quiet() { openssl "$@" >/dev/null 2>&1; }
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=userapi test CA" -keyout "$tls/ca.key" -out "$tls/ca.crt"
openssl_quiet req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=unrelated CA" -keyout "$tls/other.key" -out "$tls/other-ca.crt"
openssl_quiet req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$tls/server.key" -out "$tls/server.csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$tls/san.ext"
openssl_quiet x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/san.ext" -out "$tls/server.crt"
chmod 600 "$tls/server.key"
if [[ ${#run_as[@]} -gt 0 ]]; then chown -R "$pg_user" "$work"; fi

# shellcheck disable=SC2329 # run by the trap below
cleanup() {
  "${run_as[@]}" "$pg_bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"${run_as[@]}" "$pg_bin/initdb" -D "$data" -U userapi --pwfile="$work/pwfile" -A scram-sha-256 \
  --no-sync -E UTF8 --locale=C.UTF-8 >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; exit 1; }
cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
ssl = on
ssl_cert_file = '$tls/server.crt'
ssl_key_file = '$tls/server.key'
fsync = on
max_connections = 200
CONF
"${run_as[@]}" "$pg_bin/pg_ctl" -D "$data" -l "$work/server.log" -w -t 30 start >/dev/null \
  || { cat "$work/server.log" >&2; exit 1; }
PGPASSWORD="$password" "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U userapi -d postgres -qc "CREATE DATABASE userapi" >/dev/null

export USERAPI_TEST_POSTGRES_URL="postgres://userapi:$password@127.0.0.1:$port/userapi"
export USERAPI_TEST_POSTGRES_CA="$tls/ca.crt" USERAPI_TEST_OTHER_CA="$tls/other-ca.crt"
export PGDATA_DIR="$data" PG_BIN="$pg_bin" PG_PORT="$port" PG_RUN_AS="${run_as[*]:-}"
echo "with-postgres: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
set +e
"$@"
status=$?
set -e
exit $status
