#!/usr/bin/env bash
# Generates the compose stack's secrets once (./secrets is git-ignored):
# a random PostgreSQL password and a random API token, printed for the user.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mkdir -p "$root/secrets"
chmod 700 "$root/secrets"
umask 077
[[ -s "$root/secrets/postgres-password" ]] || head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$root/secrets/postgres-password"
[[ -s "$root/secrets/api-tokens" ]] || { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo; } >"$root/secrets/api-tokens"
# The containers run as other users (postgres: 999, userapi: 65532) and read these files.
chmod 644 "$root/secrets/postgres-password" "$root/secrets/api-tokens"
echo "API token: $(head -1 "$root/secrets/api-tokens")"
