#!/usr/bin/env bash
# Debian packages for the headless-browser test of the web demo (tests/test_serve.py): chromium + chromedriver.
# Does nothing when both are already on PATH. Needs root (or sudo) the first time. Not needed to run the server.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "[sys] chromium and chromedriver present"
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[sys] installing chromium + chromium-driver (Debian packages, ~30 s)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
echo "[sys] done"
