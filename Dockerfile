# syntax=docker/dockerfile:1.7
#
# userapi container image: a release build with the Swift runtime linked in
# statically, on a distroless base (glibc, libstdc++, CA certificates, tzdata;
# no shell, no package manager), running as UID/GID 65532.
#
#   docker build --build-arg USERAPI_VERSION=1.2.3 --build-arg USERAPI_COMMIT=$(git rev-parse --short HEAD) -t userapi .
#
# Multi-arch: `docker buildx build --platform linux/amd64,linux/arm64`. The
# build stage runs on the target platform (emulated by QEMU for the foreign
# one): Swift on Linux cross-compiles only with an extra SDK that the official
# image does not carry. BUILDPLATFORM and TARGETARCH keep the package cache of
# each architecture apart.
#
# Pin bases by digest in production (the release workflow passes
# SWIFT_IMAGE/RUNTIME_IMAGE with @sha256:... digests).

ARG SWIFT_IMAGE=docker.io/library/swift:6.3.1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---------------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
# Fail a RUN when any command of a pipeline fails, not only the last.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TARGETARCH
ARG BUILDPLATFORM
WORKDIR /src

# SQLite's headers for GRDB (the swift image carries only the runtime library).
# Pinned for reproducible builds; bump with Debian's point releases.
ARG SQLITE_DEV_VERSION=3.40.1-2+deb12u2
RUN apt-get update \
 && apt-get install -y --no-install-recommends "libsqlite3-dev=${SQLITE_DEV_VERSION}" \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first: this layer is reused until Package.swift changes.
COPY Package.swift ./
RUN --mount=type=cache,id=userapi-spm-${TARGETARCH},target=/root/.cache/org.swift.swiftpm \
    swift package resolve

COPY Sources ./Sources
COPY Tests ./Tests

# Version stamp (see Package.swift): build arguments, not files in the context.
ARG USERAPI_VERSION=unknown
ARG USERAPI_COMMIT=unknown
ARG USERAPI_BUILT=unknown
RUN --mount=type=cache,id=userapi-build-${TARGETARCH},target=/src/.build \
    --mount=type=cache,id=userapi-spm-${TARGETARCH},target=/root/.cache/org.swift.swiftpm \
    USERAPI_VERSION="${USERAPI_VERSION}" USERAPI_COMMIT="${USERAPI_COMMIT}" USERAPI_BUILT="${USERAPI_BUILT}" \
    swift build -c release --static-swift-stdlib --product userapi \
 && bin="$(swift build -c release --show-bin-path)/userapi" \
 # Debug info is 40 % of the binary; the symbol table stays, so crash backtraces keep function names.
 && install -D -m 0755 "$bin" /staging/usr/local/bin/userapi \
 && strip --strip-debug /staging/usr/local/bin/userapi \
 # distroless cc has glibc, libgcc and libstdc++; the other libraries the binary links are zlib and SQLite.
 && for lib in $(ldd "$bin" | awk '/libz\.so|libsqlite3\.so/ {print $3}'); do \
      real="$(readlink -f "$lib")"; install -D -m 0644 "$real" "/staging$(dirname "$real")/$(basename "$lib")"; \
    done \
 # Symbolicated crash backtraces need the static backtracer next to the binary's runtime.
 && install -D -m 0755 /usr/libexec/swift/linux/swift-backtrace-static /staging/usr/libexec/swift/swift-backtrace-static \
 && install -d -m 0750 /staging/data

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
ARG USERAPI_VERSION=unknown
ARG USERAPI_COMMIT=unknown
ARG USERAPI_BUILT=unknown
ARG SOURCE_URL=https://github.com/OWNER/userapi

LABEL org.opencontainers.image.title="userapi" \
      org.opencontainers.image.description="A users REST service in Swift (Hummingbird 2), embedded SQLite or PostgreSQL" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${USERAPI_VERSION}" \
      org.opencontainers.image.revision="${USERAPI_COMMIT}" \
      org.opencontainers.image.created="${USERAPI_BUILT}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=build /staging/usr /usr
COPY --from=build --chown=65532:65532 /staging/data /data

# Listen on every interface inside the container; keep data on the volume.
ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    DATABASE_URL=sqlite:/data/userapi.sqlite \
    LOG_FORMAT=json \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=mentioned,interactive=no,swift-backtrace=/usr/libexec/swift/swift-backtrace-static

USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/userapi", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/userapi"]
CMD ["serve"]
