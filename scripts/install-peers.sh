#!/usr/bin/env bash
# Install the real peers the interop tests and benchmarks run against, from Debian's
# packages, when they are missing.  Needs root (CI runs as root); without root it only
# says what is missing, and the interop tests skip themselves.
set -euo pipefail
need=()
for tool in skopeo umoci containerd ctr podman docker-registry htpasswd openssl jq; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
[ ${#need[@]} -eq 0 ] && exit 0
pkgs=()
for tool in "${need[@]}"; do
  case "$tool" in
    ctr|containerd) pkgs+=(containerd) ;;
    htpasswd) pkgs+=(apache2-utils) ;;
    *) pkgs+=("$tool") ;;
  esac
done
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: not root; missing: ${need[*]} (interop tests will skip)" >&2
  exit 0
fi
echo "install-peers: installing ${pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do  # the package archive can fail transiently: try again before giving up
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; then
    exit 0
  fi
  echo "install-peers: attempt $attempt failed" >&2
  sleep $((attempt * 10))
done
echo "install-peers: could not install ${pkgs[*]}" >&2
exit 1
