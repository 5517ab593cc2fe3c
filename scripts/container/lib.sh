# Shared settings for the container scripts (sourced, not run).
# shellcheck shell=bash
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CONTAINERS_CONF="$root/scripts/container/containers.conf"
# The image names the Dockerfile uses; local stand-ins are created under the same names.
SWIFT_IMAGE="${SWIFT_IMAGE:-docker.io/library/swift:6.3.1-bookworm}"
RUNTIME_IMAGE="${RUNTIME_IMAGE:-gcr.io/distroless/cc-debian12:nonroot}"
IMAGE="${IMAGE:-localhost/userapi}"
TAG="${TAG:-dev}"
# shellcheck disable=SC2034 # used by stand-ins.sh
cache_dir="$root/.tools/container"

# The podman CLI alone (podman-compose calls `podman version` before anything else).
need_podman_cli() {
  "$root/scripts/tools/ensure-apt.sh" podman runc
}

need_podman() {
  need_podman_cli
  "$root/scripts/tools/ensure-apt.sh" uidmap debootstrap
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "container: these scripts build stand-in base images with debootstrap and run podman as root; re-run with sudo" >&2
    exit 1
  fi
}
