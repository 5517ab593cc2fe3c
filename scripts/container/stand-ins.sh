#!/usr/bin/env bash
# Creates local stand-ins for the two base images the Dockerfile names, for
# machines that cannot pull from registries (CI here is offline):
#
#   docker.io/library/swift:6.3.1-bookworm   Debian 12 plus this machine's Swift
#       toolchain at the official image's path (/usr), plus git redirected to the
#       local package mirror (/opt/swift-packages) so `swift package resolve`
#       works offline. The Dockerfile is unchanged: with the real image it
#       resolves from GitHub.
#   gcr.io/distroless/cc-debian12:nonroot    what distroless "cc" contains: glibc,
#       libgcc, libstdc++, CA certificates, tzdata, netbase, and the nonroot
#       user 65532; no shell, no package manager.
#
# Both come from one `debootstrap --variant=minbase bookworm`, cached under
# .tools/container. Existing images are kept (delete them to rebuild).
set -euo pipefail
# shellcheck source=scripts/container/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_podman

swift_root="${SWIFT_TOOLCHAIN:-/opt/swift}"
mirror="${SWIFT_PACKAGE_MIRROR:-/opt/swift-packages}"
mirror_url="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the official swift:*-bookworm image installs next to the toolchain.
builder_packages=binutils,git,ca-certificates,gnupg2,libc6-dev,libcurl4-openssl-dev,libedit2,libgcc-12-dev,libpython3-dev,libsqlite3-0,libstdc++-12-dev,libxml2-dev,libncurses-dev,libz3-dev,pkg-config,tzdata,zlib1g-dev,unzip
runtime_packages=(libc6 libgcc-s1 libstdc++6 ca-certificates tzdata netbase)

mkdir -p "$cache_dir"
rootfs_tar="$cache_dir/bookworm-$(echo "$builder_packages" | sha256sum | cut -c1-12).tar"
if [[ ! -f "$rootfs_tar" ]]; then
  work="$(mktemp -d /tmp/userapi-debootstrap.XXXXXX)"
  echo "stand-ins: debootstrap bookworm (minbase + toolchain dependencies)" >&2
  debootstrap --variant=minbase --include="$builder_packages" bookworm "$work" "$mirror_url" >"$cache_dir/debootstrap.log" 2>&1 \
    || { tail -20 "$cache_dir/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/var/cache/apt/archives"/*.deb "$work/var/lib/apt/lists"/*
  tar -C "$work" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$work"
fi

if ! podman image exists "$SWIFT_IMAGE"; then
  echo "stand-ins: $SWIFT_IMAGE from Debian 12 + $swift_root" >&2
  [[ -x "$swift_root/usr/bin/swift" ]] || { echo "stand-ins: no Swift toolchain at $swift_root" >&2; exit 1; }
  work="$(mktemp -d /tmp/userapi-builder.XXXXXX)"
  tar -C "$work" -xf "$rootfs_tar"
  cp -a "$swift_root/usr/." "$work/usr/"
  if [[ -d "$mirror" ]]; then
    mkdir -p "$work/opt"
    cp -a "$mirror" "$work/opt/swift-packages"
    printf '[url "/opt/swift-packages/"]\n\tinsteadOf = https://github.com/\n' >"$work/etc/gitconfig"
    printf '[safe]\n\tdirectory = *\n' >>"$work/etc/gitconfig"
  fi
  tar -C "$work" -c . | podman import --change 'CMD ["/bin/bash"]' - "$SWIFT_IMAGE" >/dev/null
  rm -rf "$work"
fi

if ! podman image exists "$RUNTIME_IMAGE"; then
  echo "stand-ins: $RUNTIME_IMAGE (distroless cc layout)" >&2
  full="$(mktemp -d /tmp/userapi-full.XXXXXX)"
  slim="$(mktemp -d /tmp/userapi-distroless.XXXXXX)"
  tar -C "$full" -xf "$rootfs_tar"
  # Debian 12 has a merged /usr: /lib, /bin ... are links into /usr. Keep them first,
  # so package paths such as /lib/x86_64-linux-gnu/libc.so.6 land under /usr.
  mkdir -p "$slim/usr/lib" "$slim/usr/lib64" "$slim/usr/bin" "$slim/usr/sbin"
  for link in bin lib lib64 sbin; do [[ -L "$full/$link" ]] && cp -a "$full/$link" "$slim/$link"; done
  # Copy exactly the files of the runtime packages, as distroless does.
  for pkg in "${runtime_packages[@]}"; do
    while IFS= read -r path; do
      [[ -e "$full$path" && ! -d "$full$path" || -L "$full$path" ]] || continue
      mkdir -p "$slim$(dirname "$path")"
      cp -a "$full$path" "$slim$path"
    done < <(chroot "$full" dpkg -L "$pkg" 2>/dev/null)
  done
  # Generated at install time, not listed by dpkg: the CA bundle and merged-/usr links.
  mkdir -p "$slim/etc/ssl/certs" "$slim/tmp" "$slim/home/nonroot" "$slim/root"
  cp -aL "$full/etc/ssl/certs/ca-certificates.crt" "$slim/etc/ssl/certs/"
  chmod 1777 "$slim/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$slim/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >"$slim/etc/group"
  chown 65532:65532 "$slim/home/nonroot"
  tar -C "$slim" -c . | podman import --change 'USER 65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$RUNTIME_IMAGE" >/dev/null
  rm -rf "$full" "$slim"
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "swift|distroless" >&2
