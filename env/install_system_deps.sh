#!/usr/bin/env bash
# Debian packages needed by ExpRate@CDM rendering: pdflatex (TeX Live) and pdftoppm (poppler).
# Does nothing when both are already on PATH. Needs root (or sudo) the first time.
set -euo pipefail
exec bash "$(dirname "$0")/apt_install.sh" "TeX Live + poppler-utils (Debian packages, ~40 s)" "pdflatex pdftoppm" \
    texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended poppler-utils
