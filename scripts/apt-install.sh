# Sourced by scripts/install-peers.sh and bench/install-tools.sh: install Debian packages
# when some tool is missing.
#
#   apt_install WHO NOTE PACKAGE...
#
# WHO names the caller in its messages; NOTE is said after the list of what is missing when
# not root (what then happens without them). Without root it only says what is missing and
# returns 0; as root it installs the packages, trying three times (the package archive can
# fail transiently), and returns 1 when all three fail.
apt_install() {
  local who=$1 note=$2
  shift 2
  [ $# -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$who: not root; missing: $*${note:+ ($note)}" >&2
    return 0
  fi
  echo "$who: installing $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  local attempt
  for attempt in 1 2 3; do
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
      return 0
    fi
    echo "$who: attempt $attempt failed" >&2
    sleep $((attempt * 10))
  done
  echo "$who: could not install $*" >&2
  return 1
}
