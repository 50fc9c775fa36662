#!/usr/bin/env bash
# Install what bench/ needs beyond the peers (scripts/install-peers.sh), from Debian's
# packages, when missing: mmdebstrap (the realistic fixture), docker-registry (the pull and
# push cases), GNU time (peak RSS). Needs root; without root it only says what is missing
# (the cases needing it are then reported as skipped or failed).
set -euo pipefail
source "$(dirname "$0")/../scripts/apt-install.sh"
need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[ -x /usr/bin/time ] || need+=(time)
apt_install bench/install-tools "" ${need[@]+"${need[@]}"}
