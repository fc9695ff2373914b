#!/usr/bin/env bash
# Debian packages needed by ExpRate@CDM rendering: pdflatex (TeX Live) and pdftoppm (poppler).
# Does nothing when both are already on PATH. Needs root (or sudo) the first time.
set -euo pipefail
if command -v pdflatex >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; then
    echo "[sys] pdflatex and pdftoppm present"
    exit 0
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[sys] installing TeX Live + poppler-utils (Debian packages, ~40 s)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends texlive-latex-base texlive-latex-recommended \
    texlive-latex-extra texlive-fonts-recommended poppler-utils >/dev/null
command -v pdflatex >/dev/null && command -v pdftoppm >/dev/null
echo "[sys] done"
