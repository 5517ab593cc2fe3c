#!/usr/bin/env bash
# Prints the runtime image's size: the base's layers plus ours, from `podman history`.
set -euo pipefail
# shellcheck source=scripts/container/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE:$TAG" | cut -c1-110
echo "total: $(podman image inspect --format '{{.Size}}' "$IMAGE:$TAG" | awk '{printf "%.1f MB", $1/1e6}')" \
     "(base $RUNTIME_IMAGE: $(podman image inspect --format '{{.Size}}' "$RUNTIME_IMAGE" | awk '{printf "%.1f MB", $1/1e6}'))"
