#!/usr/bin/env bash
# Install Debian packages unless the commands they provide are already on PATH (shared by install_*_deps.sh).
# Usage: apt_install.sh "WHAT (~N s)" "CMD [CMD ...]" PACKAGE [PACKAGE ...]
# Exits 0 at once when every CMD is found; else installs PACKAGE... with apt-get (root, or sudo), then fails unless
# every CMD is found. Needs root (or sudo) the first time.
set -euo pipefail
what=$1 cmds=$2
shift 2
missing=0
for c in $cmds; do command -v "$c" >/dev/null 2>&1 || missing=1; done
if [ "$missing" = 0 ]; then
    echo "[sys] ${cmds// / and } present"
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[sys] installing $what"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
for c in $cmds; do
    command -v "$c" >/dev/null 2>&1 || { echo "error: $c still not on PATH after installing $*" >&2; exit 1; }
done
echo "[sys] done"
