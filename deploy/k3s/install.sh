#!/usr/bin/env bash
# userapi on a single Linux host: installs a pinned, checksum-verified k3s and
# the userapi Helm chart in SQLite mode (one pod, data on a PersistentVolume)
# behind k3s's bundled Traefik with TLS, then prints the URL and an API token.
#
#   sudo deploy/k3s/install.sh --image ghcr.io/<owner>/userapi [--host api.example.com]
#   deploy/k3s/install.sh --dry-run ...      # print the steps; no root, no network
#
# Run it from a checkout of the repository (the chart is deploy/helm/userapi).
# Re-running it is safe: k3s is left alone if the pinned version already runs,
# the API token and TLS certificate are kept, and the chart is upgraded.
set -euo pipefail

# ---------------------------------------------------------------- pinned k3s
# The k3s release and the SHA-256 of what is downloaded for it. Nothing that
# fails these checks is executed.
# To move to another release:
#   1. deploy/k3s/install.sh --print-checksums --k3s-version vX.Y.Z+k3s1
#      (downloads the release's sha256sum-<arch>.txt files and install.sh
#      from the tag, and prints the three lines below for that release);
#   2. compare the binary sums with the release page on GitHub
#      (https://github.com/k3s-io/k3s/releases/tag/<version>), paste the lines
#      here and test on a scratch host.
# The variables can also be set in the environment for a one-off install of
# another release.
K3S_VERSION="${K3S_VERSION:-v1.36.4+k3s1}"
K3S_SHA256_AMD64="${K3S_SHA256_AMD64:-835873f37245fc615f547a2fe2af9402a347875f13fa64a1f136de644955ea3f}"
# No arm64 sum is pinned yet: on arm64 the script refuses to install until
# K3S_SHA256_ARM64 is set (from the release's sha256sum-arm64.txt).
K3S_SHA256_ARM64="${K3S_SHA256_ARM64:-}"
# k3s's install.sh at the tag above: it sets up the systemd service around
# the binary we verified (INSTALL_K3S_SKIP_DOWNLOAD keeps it from fetching
# anything itself).
K3S_INSTALL_SH_SHA256="${K3S_INSTALL_SH_SHA256:-46177d4c99440b4c0311b67233823a8e8a2fc09693f6c89af1a7161e152fbfad}"

# ---------------------------------------------------------------- defaults
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
chart_dir="$(cd "$here/../helm/userapi" 2>/dev/null && pwd || true)"
dry_run=false
print_checksums=false
host=""
image=""
tag=""
namespace="userapi"
storage_size="1Gi"
artifacts=""
release="userapi"
kubeconfig="/etc/rancher/k3s/k3s.yaml"
tls_dir="/etc/userapi-k3s"

usage() {
  cat <<EOF
Usage: $(basename "$0") [options]

Installs k3s ${K3S_VERSION} (checksum-verified) and the userapi chart in SQLite
mode behind Traefik with TLS, then prints the URL and an API token.

  --image REPO          image repository, e.g. ghcr.io/<owner>/userapi (required:
                        the chart's default ghcr.io/example/userapi is a placeholder)
  --tag TAG             image tag (default: the chart's appVersion)
  --host NAME           host name for the ingress and certificate
                        (default: this host's fully qualified name)
  --namespace NS        namespace of the release (default: ${namespace})
  --storage-size SIZE   size of the SQLite volume (default: ${storage_size})
  --chart DIR           chart directory (default: deploy/helm/userapi of this checkout)
  --artifacts DIR       take k3s and install.sh from DIR (air-gapped hosts)
                        instead of downloading; they are verified the same way
  --k3s-version V       k3s release (default: ${K3S_VERSION}; other releases
                        need their checksums, see the comment in this script)
  --dry-run             print every step instead of running it (no root, no
                        network; checksums of --artifacts are still verified)
  --print-checksums     print the pinned-checksum lines for --k3s-version and exit
  -h, --help            this text
EOF
}

die() {
  echo "error: $*" >&2
  exit 1
}

log() { printf '==> %s\n' "$*"; }

# Runs a command, or prints it (shell-quoted) in dry-run mode.
run() {
  if $dry_run; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Applies a manifest given on stdin, or prints it in dry-run mode.
apply_manifest() {
  if $dry_run; then
    echo "+ k3s kubectl apply -f - <<'MANIFEST'"
    cat
    echo "MANIFEST"
  else
    k3s kubectl apply -f -
  fi
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Fails unless the file's SHA-256 equals the expected one.
verify_sha256() {
  local file="$1" expected="$2" actual
  [[ -n "$expected" ]] || die "no expected SHA-256 for $(basename "$file"); see the comment at the top of this script"
  [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || die "expected SHA-256 for $(basename "$file") is malformed: $expected"
  actual="$(sha256_of "$file")"
  if [[ "$actual" != "$expected" ]]; then
    die "checksum mismatch for $(basename "$file"): expected $expected, got $actual (refusing to run it)"
  fi
  log "verified $(basename "$file") sha256 $actual"
}

# k3s release URLs need the '+' of the version encoded.
release_url() { printf 'https://github.com/k3s-io/k3s/releases/download/%s/%s' "${K3S_VERSION//+/%2B}" "$1"; }
install_sh_url() { printf 'https://raw.githubusercontent.com/k3s-io/k3s/%s/install.sh' "${K3S_VERSION//+/%2B}"; }

download() {
  local url="$1" dest="$2"
  run curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
    --retry 3 --connect-timeout 20 --max-time 600 --output "$dest" "$url"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) image="${2:?--image needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --host) host="${2:?--host needs a value}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a value}"; shift 2 ;;
    --storage-size) storage_size="${2:?--storage-size needs a value}"; shift 2 ;;
    --chart) chart_dir="${2:?--chart needs a value}"; shift 2 ;;
    --artifacts) artifacts="${2:?--artifacts needs a value}"; shift 2 ;;
    --k3s-version) K3S_VERSION="${2:?--k3s-version needs a value}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    --print-checksums) print_checksums=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

[[ "$K3S_VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$ ]] || die "k3s version must look like v1.36.4+k3s1, got: $K3S_VERSION"

if $print_checksums; then
  command -v curl >/dev/null || die "--print-checksums needs curl"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  for arch in amd64 arm64; do
    download "$(release_url "sha256sum-$arch.txt")" "$tmp/sums-$arch.txt"
  done
  download "$(install_sh_url)" "$tmp/install.sh"
  amd64="$(awk '$2 == "k3s" {print $1}' "$tmp/sums-amd64.txt")"
  arm64="$(awk '$2 == "k3s-arm64" {print $1}' "$tmp/sums-arm64.txt")"
  echo "K3S_VERSION=\"\${K3S_VERSION:-$K3S_VERSION}\""
  echo "K3S_SHA256_AMD64=\"\${K3S_SHA256_AMD64:-$amd64}\""
  echo "K3S_SHA256_ARM64=\"\${K3S_SHA256_ARM64:-$arm64}\""
  echo "K3S_INSTALL_SH_SHA256=\"\${K3S_INSTALL_SH_SHA256:-$(sha256_of "$tmp/install.sh")}\""
  exit 0
fi

# ---------------------------------------------------------------- preflight
$dry_run && log "dry run: printing the steps; nothing is installed or downloaded"
[[ "$(uname -s)" == "Linux" ]] || die "k3s needs Linux"
case "$(uname -m)" in
  x86_64 | amd64) binary_name="k3s"; expected_binary_sha="$K3S_SHA256_AMD64" ;;
  aarch64 | arm64) binary_name="k3s-arm64"; expected_binary_sha="$K3S_SHA256_ARM64" ;;
  *) die "unsupported architecture $(uname -m) (amd64 and arm64 only)" ;;
esac
if ! $dry_run; then
  [[ "$(id -u)" -eq 0 ]] || die "run as root (sudo), or use --dry-run"
fi
for cmd in sha256sum tar base64 awk; do
  command -v "$cmd" >/dev/null || die "missing command: $cmd"
done
if [[ -z "$artifacts" ]] && ! $dry_run; then
  command -v curl >/dev/null || die "missing command: curl (or use --artifacts)"
fi
[[ -n "$chart_dir" && -f "$chart_dir/Chart.yaml" ]] || die "chart not found (expected deploy/helm/userapi next to this script, or --chart DIR)"

chart_default_repo="$(awk '/^image:/ {in_image=1; next} in_image && /^[^ ]/ {in_image=0} in_image && $1 == "repository:" {print $2; exit}' "$chart_dir/values.yaml")"
# The chart's default repository is a placeholder: the image must be named.
[[ -n "$image" && "$image" != *OWNER* ]] || die "set --image to the repository your userapi image is published in (the chart default is a placeholder: ${chart_default_repo:-none})"
if [[ -z "$tag" ]]; then
  tag="$(awk -F'"' '/^appVersion:/ {print $2}' "$chart_dir/Chart.yaml")"
fi
[[ -n "$tag" ]] || die "could not read appVersion from $chart_dir/Chart.yaml; pass --tag"
if [[ -z "$host" ]]; then
  host="$(hostname -f 2>/dev/null || hostname)"
fi
host="${host,,}"
[[ "$host" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ ]] || die "invalid host name: $host"
[[ "$namespace" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "invalid namespace: $namespace"
[[ "$storage_size" =~ ^[0-9]+(Mi|Gi|Ti)$ ]] || die "invalid storage size: $storage_size (e.g. 1Gi)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------- 1. k3s artifacts
log "k3s ${K3S_VERSION} for $(uname -m): fetching and verifying"
if [[ -n "$artifacts" ]]; then
  [[ -f "$artifacts/$binary_name" && -f "$artifacts/install.sh" ]] || die "--artifacts needs $binary_name and install.sh in $artifacts"
  cp "$artifacts/$binary_name" "$work/k3s"
  cp "$artifacts/install.sh" "$work/install.sh"
  verify_sha256 "$work/k3s" "$expected_binary_sha"
  verify_sha256 "$work/install.sh" "$K3S_INSTALL_SH_SHA256"
elif $dry_run; then
  download "$(release_url "$binary_name")" "$work/k3s"
  download "$(install_sh_url)" "$work/install.sh"
  echo "+ verify sha256 of k3s = ${expected_binary_sha:-<none pinned for this architecture>}"
  echo "+ verify sha256 of install.sh = $K3S_INSTALL_SH_SHA256"
else
  download "$(release_url "$binary_name")" "$work/k3s"
  download "$(install_sh_url)" "$work/install.sh"
  verify_sha256 "$work/k3s" "$expected_binary_sha"
  verify_sha256 "$work/install.sh" "$K3S_INSTALL_SH_SHA256"
fi

# ---------------------------------------------------------------- 2. k3s
installed_version=""
if command -v k3s >/dev/null 2>&1; then
  installed_version="$(k3s --version 2>/dev/null | awk 'NR == 1 {print $3}')"
fi
if [[ "$installed_version" == "$K3S_VERSION" ]] && ! $dry_run; then
  log "k3s $K3S_VERSION already installed"
else
  log "installing k3s $K3S_VERSION (Traefik and the local-path volume provisioner are k3s defaults)"
  run install -m 0755 "$work/k3s" /usr/local/bin/k3s
  # The install script only writes the service around the verified binary.
  run env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION="$K3S_VERSION" \
    INSTALL_K3S_EXEC="server --write-kubeconfig-mode 0600" sh "$work/install.sh"
fi
export KUBECONFIG="$kubeconfig"
log "waiting for the node to be Ready"
run k3s kubectl wait --for=condition=Ready node --all --timeout=300s

# ---------------------------------------------------------------- 3. namespace, token, TLS
log "namespace $namespace"
apply_manifest <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: ${namespace}
  labels:
    pod-security.kubernetes.io/enforce: restricted
EOF

# One API token, kept across re-runs. More tokens: add lines to the Secret;
# the app re-reads it without a restart (docs/operations.md).
token_secret="${release}-api-tokens"
token=""
if ! $dry_run && k3s kubectl -n "$namespace" get secret "$token_secret" >/dev/null 2>&1; then
  token="$(k3s kubectl -n "$namespace" get secret "$token_secret" -o jsonpath='{.data.tokens}' | base64 -d | awk 'NF && $1 !~ /^sha256:/ {print; exit}')"
  log "keeping the existing API token in secret $token_secret"
fi
if [[ -z "$token" ]]; then
  if $dry_run; then
    token="<generated: 64 hex characters from /dev/urandom>"
    echo "+ k3s kubectl -n $namespace create secret generic $token_secret --from-literal=tokens=<token>"
  else
    token="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
    k3s kubectl -n "$namespace" create secret generic "$token_secret" --from-literal=tokens="$token" >/dev/null
    log "created API token secret $token_secret"
  fi
fi

# Self-signed certificate for the host (kept across re-runs). Traefik serves
# it; clients trust it with --cacert. With a real domain, replace the Secret
# (or use cert-manager with an ACME issuer via the chart's ingress.certManager).
tls_secret="${release}-tls"
tls_cert="$tls_dir/$host.crt"
if command -v openssl >/dev/null 2>&1 || $dry_run; then
  if [[ ! -f "$tls_cert" ]] || $dry_run; then
    log "self-signed TLS certificate for $host"
    run mkdir -p "$tls_dir"
    run openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes \
      -keyout "$tls_dir/$host.key" -out "$tls_cert" \
      -subj "/CN=$host" -addext "subjectAltName=DNS:$host" -addext "extendedKeyUsage=serverAuth"
    run chmod 0600 "$tls_dir/$host.key"
  fi
  if $dry_run; then
    echo "+ k3s kubectl -n $namespace create secret tls $tls_secret --cert=$tls_cert --key=$tls_dir/$host.key (applied)"
  else
    k3s kubectl -n "$namespace" create secret tls "$tls_secret" --cert="$tls_cert" --key="$tls_dir/$host.key" \
      --dry-run=client -o yaml | k3s kubectl apply -f - >/dev/null
  fi
  tls_values="  tls:
    - secretName: ${tls_secret}
      hosts: [\"${host}\"]"
else
  log "openssl not found: Traefik will serve its built-in self-signed default certificate"
  tls_cert=""
  tls_values="  tls:
    - hosts: [\"${host}\"]"
fi

# ---------------------------------------------------------------- 4. the chart
# k3s's bundled Helm controller installs the chart from a HelmChart object
# that carries the packaged chart, so no helm binary is needed on the host.
log "packaging the chart from $chart_dir"
tar -C "$(dirname "$chart_dir")" -czf "$work/chart.tgz" "$(basename "$chart_dir")"
chart_b64="$(base64 -w0 "$work/chart.tgz")"
log "chart package: $(wc -c <"$work/chart.tgz") bytes"

log "installing the chart: SQLite on a ${storage_size} volume, Traefik ingress https://${host}/"
if $dry_run; then chart_shown="<base64 of chart.tgz, ${#chart_b64} characters>"; else chart_shown="$chart_b64"; fi
apply_manifest <<EOF
apiVersion: helm.cattle.io/v1
kind: HelmChart
metadata:
  name: ${release}
  namespace: kube-system
spec:
  targetNamespace: ${namespace}
  chartContent: ${chart_shown}
  valuesContent: |-
    image:
      repository: ${image}
      tag: "${tag}"
    database:
      type: sqlite
    replicaCount: 1
    persistence:
      enabled: true
      storageClass: local-path
      size: ${storage_size}
    tokens:
      existingSecret: ${token_secret}
      key: tokens
    ingress:
      enabled: true
      preset: traefik
      hosts:
        - host: ${host}
          paths:
            - path: /
              pathType: Prefix
    $(printf '%s' "$tls_values" | sed '2,$s/^/    /')
EOF

log "waiting for the deployment to become available"
if $dry_run; then
  echo "+ wait until deployment/${release} exists in ${namespace}, then:"
  run k3s kubectl -n "$namespace" rollout status "deployment/${release}" --timeout=300s
else
  for _ in $(seq 1 60); do
    k3s kubectl -n "$namespace" get "deployment/${release}" >/dev/null 2>&1 && break
    sleep 5
  done
  k3s kubectl -n "$namespace" rollout status "deployment/${release}" --timeout=300s
fi

# ---------------------------------------------------------------- 5. result
ip="$(hostname -I 2>/dev/null | awk '{print $1}')"
ip="${ip:-127.0.0.1}"
echo
if $dry_run; then echo "(dry run) userapi would now be running:"; else echo "userapi is running."; fi
echo "  URL:   https://${host}/"
echo "  Token: ${token}"
if [[ -n "$tls_cert" ]]; then
  echo "  CA:    ${tls_cert} (self-signed; pass it to clients with --cacert)"
  trust=(--cacert "$tls_cert")
else
  trust=(--insecure)
fi
echo
echo "Try it (--resolve is only needed while DNS does not point ${host} at ${ip}):"
echo "  curl ${trust[*]} --resolve ${host}:443:${ip} https://${host}/users"
echo "  curl ${trust[*]} --resolve ${host}:443:${ip} -H 'Authorization: Bearer <token>' \\"
echo "       -H 'Content-Type: application/json' -d '{\"name\":\"Ada\",\"username\":\"ada\",\"email\":\"ada@example.com\"}' https://${host}/users"
