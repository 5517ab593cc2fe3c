#!/usr/bin/env bash
# Deploys the chart in deploy/helm/userapi to one environment and proves it works:
#   helm upgrade --install --rollback-on-failure --wait   (Helm 4's name for --atomic)
#   helm test                                             (the chart's /readyz + CRUD round trip)
# The same command runs from GitHub Actions (deploy.yml), GitLab CI and a laptop:
#
#   KUBECONFIG=~/.kube/dev.yaml make helm-deploy DEPLOY_ENV=dev TAG=1.4.0
#
# Arguments: ENV (dev|staging|prod) and the image TAG.
# Environment (all optional but KUBECONFIG, which helm reads itself):
#   IMAGE_REPOSITORY  image without tag (default: the chart's values.yaml)
#   NAMESPACE         default userapi-ENV
#   CREATE_NAMESPACE  1 adds --create-namespace; default 0, so a deployer account
#                     scoped to its namespace (no cluster-wide rights) is enough
#   RELEASE           Helm release name, default userapi
#   HELM_VALUES       space-separated values files for this environment, applied in order
#   HELM_TIMEOUT      default 10m (rollout plus the migration hook)
#   HELM_TEST         1 (default) runs `helm test` after the upgrade; 0 skips it
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

env_name="${1:-}"
tag="${2:-}"
if [[ ! "$env_name" =~ ^[a-z][a-z0-9-]{0,30}$ ]]; then
  echo "helm-deploy: DEPLOY_ENV must be an environment name like dev or prod (got '${env_name}')" >&2
  exit 2
fi
# OCI tag grammar: nothing else reaches --set.
if [[ ! "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ ]]; then
  echo "helm-deploy: TAG must be an image tag (got '${tag}')" >&2
  exit 2
fi
if [[ -z "${KUBECONFIG:-}" || ! -s "${KUBECONFIG%%:*}" ]]; then
  echo "helm-deploy: KUBECONFIG must name the kubeconfig file of the ${env_name} cluster" >&2
  exit 2
fi
command -v helm >/dev/null || { echo "helm-deploy: helm (v3.13+ or v4) is not installed" >&2; exit 2; }

release="${RELEASE:-userapi}"
namespace="${NAMESPACE:-userapi-${env_name}}"
args=(upgrade --install "$release" "$root/deploy/helm/userapi"
  --namespace "$namespace"
  --wait --timeout "${HELM_TIMEOUT:-10m}"
  --set-string "image.tag=${tag}")
# Helm 4 renamed --atomic to --rollback-on-failure (--atomic is deprecated there).
if helm upgrade --help 2>/dev/null | grep -q -- '--rollback-on-failure'; then
  args+=(--rollback-on-failure)
else
  args+=(--atomic)
fi
if [[ "${CREATE_NAMESPACE:-0}" == 1 ]]; then
  args+=(--create-namespace)
fi
if [[ -n "${IMAGE_REPOSITORY:-}" ]]; then
  args+=(--set-string "image.repository=${IMAGE_REPOSITORY}")
fi
read -r -a values_files <<< "${HELM_VALUES:-}"
for f in "${values_files[@]}"; do
  [[ -f "$root/$f" ]] && f="$root/$f"
  args+=(--values "$f")
done

echo "helm-deploy: ${release} -> ${env_name} (namespace ${namespace}), image tag ${tag}"
helm "${args[@]}"
if [[ "${HELM_TEST:-1}" == 1 ]]; then
  if ! helm test "$release" --namespace "$namespace" --logs --timeout 5m; then
    echo "helm-deploy: helm test failed; the release is live. Roll back with:" >&2
    echo "  helm rollback ${release} --namespace ${namespace} --wait" >&2
    exit 1
  fi
fi
helm status "$release" --namespace "$namespace"
