#!/usr/bin/env bash
# Builds the repository's Dockerfile with podman, offline: bases come from
# local images (scripts/container/stand-ins.sh creates stand-ins when the real
# ones cannot be pulled), never from a registry.
#   IMAGE=localhost/userapi TAG=dev scripts/container/build.sh
set -euo pipefail
# shellcheck source=scripts/container/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_podman
"$root/scripts/container/stand-ins.sh"

version="${USERAPI_VERSION:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' "$root/deploy/helm/userapi/Chart.yaml")}"
commit="${USERAPI_COMMIT:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
built="${USERAPI_BUILT:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
start=$(date +%s)
podman build --pull=never --format docker \
  --build-arg "SWIFT_IMAGE=$SWIFT_IMAGE" --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE" \
  --build-arg "USERAPI_VERSION=$version" --build-arg "USERAPI_COMMIT=$commit" --build-arg "USERAPI_BUILT=$built" \
  -t "$IMAGE:$TAG" -f "$root/Dockerfile" "$root"
echo "container: built $IMAGE:$TAG ($version, $commit) in $(( $(date +%s) - start ))s" >&2
