#!/usr/bin/env bash
# Install what bench/ needs beyond the peers (scripts/install-peers.sh), from Debian's
# packages, when missing: mmdebstrap (the realistic fixture), docker-registry (the pull and
# push cases), GNU time (peak RSS). Needs root; without root it only says what is missing
# (the cases needing it are then reported as skipped or failed).
set -euo pipefail
need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[ -x /usr/bin/time ] || need+=(time)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/install-tools: not root; missing: ${need[*]}" >&2
  exit 0
fi
echo "bench/install-tools: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do  # the package archive can fail transiently: try again before giving up
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
    exit 0
  fi
  echo "bench/install-tools: attempt $attempt failed" >&2
  sleep $((attempt * 10))
done
echo "bench/install-tools: could not install ${need[*]}" >&2
exit 1
