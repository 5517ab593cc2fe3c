#!/usr/bin/env bash
# Checks compose.yaml: podman-compose must parse and resolve it, and the
# settings that make it safe must be there (the parsed config is inspected,
# not the text): healthchecks, depends_on service_healthy, read-only non-root
# userapi, secrets from files, no password in the environment.
set -euo pipefail
# shellcheck source=scripts/container/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_podman_cli
tools="$("$root/scripts/tools/ensure-venv.sh")"
work="$(mktemp -d /tmp/userapi-compose.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# podman-compose resolves secret files relative to the project: give it a copy with dummy secrets.
cp "$root/compose.yaml" "$work/"
mkdir -p "$work/deploy/compose" "$work/secrets"
cp "$root/deploy/compose/config.yaml" "$work/deploy/compose/"
echo dummy >"$work/secrets/postgres-password"
echo dummy >"$work/secrets/api-tokens"
(cd "$work" && "$tools/podman-compose" -f compose.yaml config) >"$work/resolved.yaml"
"$tools/python" - "$work/resolved.yaml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
s = doc["services"]
problems = []
api, pg = s["userapi"], s["postgres"]
if api.get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
    problems.append("userapi must wait for postgres to be healthy")
for name, svc in s.items():
    if "healthcheck" not in svc: problems.append(f"{name} has no healthcheck")
    if not svc.get("read_only"): problems.append(f"{name} is not read-only")
    env = svc.get("environment", {})
    env = env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)
    for k, v in env.items():
        if "PASSWORD" in k and not k.endswith("_FILE"): problems.append(f"{name} sets {k} in its environment")
        if "postgres://" in str(v) and ":" in str(v).split("@")[0][len("postgres://"):]:
            problems.append(f"{name}: {k} embeds a password")
if api.get("user") != "65532:65532": problems.append("userapi must run as 65532:65532")
if "ALL" not in api.get("cap_drop", []): problems.append("userapi must drop all capabilities")
for port in api.get("ports", []):
    if not str(port).startswith("127.0.0.1:"): problems.append(f"userapi publishes {port} beyond loopback")
for name, secret in doc.get("secrets", {}).items():
    if "file" not in secret: problems.append(f"secret {name} must come from a file")
if "postgres-data" not in doc.get("volumes", {}): problems.append("postgres data needs a named volume")
if problems:
    print("compose-check:", *problems, sep="\n  ")
    sys.exit(1)
print(f"compose-check: compose.yaml resolves ({', '.join(s)}) and is hardened")
PY
