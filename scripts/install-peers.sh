#!/usr/bin/env bash
# Install the real peers the interop tests and benchmarks run against, from Debian's
# packages, when they are missing.  Needs root (CI runs as root); without root it only
# says what is missing, and the interop tests skip themselves.
set -euo pipefail
source "$(dirname "$0")/apt-install.sh"
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
apt_install install-peers "interop tests will skip" "${pkgs[@]}"
