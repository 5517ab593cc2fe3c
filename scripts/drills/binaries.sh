#!/usr/bin/env bash
# Produces the two release binaries a rolling update goes between:
#   .build/drills/userapi-old  the current release: taken from the container
#       image when `make image` built one (the binary that ships), otherwise a
#       release build stamped VERSION;
#   .build/drills/userapi-new  a release build stamped VERSION+next, so the
#       drill can watch the version in GET /version change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out=.build/drills
mkdir -p "$out"
version="${VERSION:?set VERSION}"
release_build() { # $1 = version stamp
  USERAPI_VERSION="$1" USERAPI_BUILT="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    swift build -c release --static-swift-stdlib --product userapi >&2
  echo "$(swift build -c release --show-bin-path)/userapi"
}

image="${IMAGE:-localhost/userapi}:${TAG:-dev}"
export CONTAINERS_CONF="$root/scripts/container/containers.conf"
if [[ -z "${DRILLS_NO_IMAGE:-}" ]] && command -v podman >/dev/null && podman image exists "$image" 2>/dev/null; then
  container="$(podman create "$image")"
  podman cp "$container:/usr/local/bin/userapi" "$out/userapi-old"
  podman rm "$container" >/dev/null
  echo "drills: old = the binary in $image ($("$out/userapi-old" version))" >&2
else
  cp "$(release_build "$version")" "$out/userapi-old"
  echo "drills: old = release build ($("$out/userapi-old" version))" >&2
fi
cp "$(release_build "$version+next")" "$out/userapi-new"
echo "drills: new = release build ($("$out/userapi-new" version))" >&2
