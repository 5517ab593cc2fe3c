# shellcheck shell=bash
# Shared helpers for the infra test scripts: each check prints PASS/FAIL/SKIP
# and the script ends with "N passed, N failed, N skipped".

passed=0
failed=0
skipped=0

# check NAME CMD...: passes when CMD exits 0. Shows CMD's output on failure,
# and its last line (a sub-suite's summary) on success.
check() {
  local name="$1" out status
  shift
  set +e
  out="$("$@" 2>&1)"
  status=$?
  set -e
  if [[ $status -eq 0 ]]; then
    passed=$((passed + 1))
    printf 'PASS %s%s\n' "$name" "$( [[ -n "$out" ]] && printf ' (%s)' "$(tail -n 1 <<<"$out")")"
  else
    failed=$((failed + 1))
    printf 'FAIL %s (exit %s)\n' "$name" "$status"
    printf '%s\n' "$out" | tail -n 60 | sed 's/^/    /'
  fi
}

# check_fails NAME CMD...: a negative control; passes when CMD fails.
check_fails() {
  local name="$1" status
  shift
  set +e
  "$@" >/dev/null 2>&1
  status=$?
  set -e
  if [[ $status -ne 0 ]]; then
    passed=$((passed + 1))
    printf 'PASS %s (exit %s, as expected)\n' "$name" "$status"
  else
    failed=$((failed + 1))
    printf 'FAIL %s (the command succeeded but must fail)\n' "$name"
  fi
}

# check_stream NAME CMD...: like check, for a sub-suite whose own report
# should stay visible (printed indented as it runs).
check_stream() {
  local name="$1" status
  shift
  set +e
  "$@" 2>&1 | sed -u 's/^/    /'
  status=${PIPESTATUS[0]}
  set -e
  if [[ $status -eq 0 ]]; then
    passed=$((passed + 1))
    printf 'PASS %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL %s (exit %s)\n' "$name" "$status"
  fi
}

skip() {
  skipped=$((skipped + 1))
  printf 'SKIP %s: %s\n' "$1" "$2"
}

summary() {
  printf '%s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
  [[ $failed -eq 0 ]]
}
