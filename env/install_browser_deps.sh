#!/usr/bin/env bash
# Debian packages for the headless-browser test of the web demo (tests/test_serve.py): chromium + chromedriver.
# Does nothing when both are already on PATH. Needs root (or sudo) the first time. Not needed to run the server.
set -euo pipefail
exec bash "$(dirname "$0")/apt_install.sh" "chromium + chromium-driver (Debian packages, ~30 s)" \
    "chromium chromedriver" chromium chromium-driver
