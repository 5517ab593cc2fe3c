#!/usr/bin/env bash
# Container smoke test: runs the built image the way a hardened platform
# would (read-only root filesystem, its default non-root user, all
# capabilities dropped, no-new-privileges, a /data volume, a loopback port)
# and checks readiness, a write and a read with a token, the HEALTHCHECK
# command, a graceful `podman stop` (exit 0 within the timeout), that the
# data survives recreating the container on the same volume, and that crashes
# leave a symbolicated report in the log (SWIFT_BACKTRACE and the backtracer).
set -euo pipefail
# shellcheck source=scripts/container/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_podman

id="smoke-$$-$RANDOM"
volume="userapi-$id"
token="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
failures=0
# Without systemd, podman reports on stderr that it cannot manage HEALTHCHECK timers; hide only that.
podman() { command podman "$@" 2> >(grep -v "unable to get systemd connection" >&2); }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
probe_dir="$(mktemp -d)"
cleanup() {
  podman rm -f -t 0 "$id" "$id-crash" >/dev/null 2>&1 || true
  rm -rf "$probe_dir"
  podman volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

run_container() {
  podman run -d --name "$id" --read-only --cap-drop=ALL --security-opt=no-new-privileges \
    -v "$volume:/data" -p "127.0.0.1:$port:8080" \
    -e AUTH_TOKENS="$token" -e SHUTDOWN_DRAIN_DELAY=2s -e SHUTDOWN_TIMEOUT=10s \
    "$IMAGE:$TAG" >/dev/null 2>"/tmp/$id.run.err" \
    || { cat "/tmp/$id.run.err" >&2; return 1; }
  # Without systemd, podman cannot schedule the HEALTHCHECK itself (it says so on stderr);
  # the check is run explicitly below with `podman healthcheck run`.
  rm -f "/tmp/$id.run.err"
}
wait_ready() {
  for _ in $(seq 1 100); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" == 200 ]] && return 0
    sleep 0.1
  done
  podman logs "$id" | tail -20
  return 1
}

podman volume create "$volume" >/dev/null
start_ns=$(date +%s%N)
run_container
if wait_ready; then
  pass "ready on $base/readyz in $(( ($(date +%s%N) - start_ns) / 1000000 )) ms"
else
  fail "not ready"
  podman logs "$id" 2>&1 | tail -20
  exit 1
fi

user="$(podman image inspect --format '{{.Config.User}}' "$IMAGE:$TAG")"
[[ "$user" == "65532:65532" ]] && pass "image user is $user" || fail "image user is '$user', not 65532:65532"
uid="$(podman top "$id" huser | tail -1 | tr -d ' ')"
[[ "$uid" == 65532 ]] && pass "process runs as uid $uid" || fail "process runs as uid '$uid'"
[[ "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$id")" == true ]] && pass "root filesystem is read-only" || fail "root filesystem is writable"
caps="$(podman inspect --format '{{.EffectiveCaps}}' "$id")"
[[ "$caps" == "[]" ]] && pass "no capabilities" || fail "capabilities: $caps"
if podman exec "$id" /bin/sh -c true >/dev/null 2>&1; then fail "the image has a shell"; else pass "no shell in the image"; fi

code="$(curl -s -o "/tmp/$id.json" -w '%{http_code}' -X POST "$base/users" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"name":"Container Test","username":"container","email":"container@example.com"}')"
user_id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id",""))' "/tmp/$id.json" 2>/dev/null || true)"
rm -f "/tmp/$id.json"
[[ "$code" == 201 && -n "$user_id" ]] && pass "created user $user_id" || fail "create answered $code"
[[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/users/$user_id")" == 200 ]] && pass "read it back" || fail "read failed"
[[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/users" -H 'Content-Type: application/json' -d '{}')" == 401 ]] \
  && pass "writes without a token are refused" || fail "write without token not refused"
[[ "$(curl -s "$base/openapi.yaml" | head -c 12)" == "openapi: 3.1" ]] && pass "openapi.yaml served" || fail "openapi.yaml missing"
version="$(curl -s "$base/version")"
[[ "$version" != *'"version":"unknown"'* ]] && pass "build stamp: $version" || fail "unstamped build: $version"

if podman healthcheck run "$id" >/dev/null 2>&1; then pass "HEALTHCHECK (userapi healthcheck) succeeds"; else fail "HEALTHCHECK failed"; fi

t0=$(date +%s%N)
podman stop -t 15 "$id" >/dev/null
elapsed=$(( ($(date +%s%N) - t0) / 1000000 ))
exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$id")"
[[ "$exit_code" == 0 ]] && pass "podman stop: exit 0 after ${elapsed} ms (drain 2 s, timeout 15 s)" || fail "podman stop: exit $exit_code after ${elapsed} ms"
podman logs "$id" 2>&1 | grep -q '"msg":"stopped"' && pass "logged the drain and a clean stop" || fail "no clean stop in the logs"
podman rm "$id" >/dev/null

run_container
wait_ready || fail "not ready after recreation"
[[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/users/$user_id")" == 200 ]] \
  && pass "the user survived recreating the container on the same volume" || fail "the user is gone after recreation"

# Crash reports. First the shipped binary: a SIGSEGV sent to the running server
# makes the runtime's handler write the report, whose frames must carry names
# (the image strips debug info but keeps the symbol table). A signal that is
# sent rather than caused does not end a Swift process (the runtime resumes
# it), so this container is removed regardless.
podman kill --signal SEGV "$id" >/dev/null
report=""
for _ in $(seq 1 60); do
  report="$(podman logs "$id" 2>&1 | grep -v '^{' || true)"
  [[ "$report" == *"Backtrace took"* ]] && break
  sleep 0.5
done
if [[ "$report" == *"Program crashed"* ]] && grep -Eq '0x[0-9a-f]+ [A-Za-z_$][^ ]* \+ [0-9]+ in userapi$' <<<"$report"; then
  pass "SIGSEGV: the log has a crash report with named frames in userapi"
else
  fail "SIGSEGV: no symbolicated crash report in the log"; echo "$report" | head -20
fi
podman rm -f -t 0 "$id" >/dev/null

# Then a real crash (a trap, as from a Swift runtime error) under the same
# restrictions, as PID 1: report with the function's name, and the process
# ends with SIGILL (exit 132) instead of hanging. The probe is compiled in the
# image the Dockerfile builds in, so it links against the same glibc as userapi.
cp "$root/scripts/container/crash-probe.swift" "$probe_dir/"
if podman run --rm --network=none -v "$probe_dir:/probe" "$SWIFT_IMAGE" \
  swiftc -O -static-stdlib /probe/crash-probe.swift -o /probe/crash-probe >"$probe_dir/build.log" 2>&1; then
  crash_code=0
  timeout 120 podman run --name "$id-crash" --read-only --cap-drop=ALL --security-opt=no-new-privileges \
    -v "$probe_dir/crash-probe:/usr/local/bin/crash-probe:ro" --entrypoint /usr/local/bin/crash-probe \
    "$IMAGE:$TAG" >"$probe_dir/crash.log" 2>&1 || crash_code=$?
  if [[ "$crash_code" == 132 ]] && grep -q "Program crashed: Illegal instruction" "$probe_dir/crash.log" \
    && grep -q "crashProbeOutOfRange" "$probe_dir/crash.log"; then
    pass "a trapping Swift program in the image: named crash report, exit 132 (SIGILL) as PID 1"
  else
    fail "trapping Swift program: exit $crash_code"; grep -v "systemd" "$probe_dir/crash.log" | head -20
  fi
else
  fail "could not compile scripts/container/crash-probe.swift in $SWIFT_IMAGE"; tail -5 "$probe_dir/build.log"
fi

if [[ "$failures" -gt 0 ]]; then echo "container smoke test: $failures failed"; exit 1; fi
echo "container smoke test: all passed"
