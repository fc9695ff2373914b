#!/usr/bin/env bash
# Launch Uni-MuMER training with LLaMA-Factory on one node (all visible GPUs) or several nodes, through
# LLaMA-Factory's own torchrun launch (FORCE_TORCHRUN=1: `llamafactory-cli train` starts torchrun itself).
#
# Usage:  bash scripts/train.sh CONFIG.yaml [key=value ...]
#   CONFIG.yaml   a LLaMA-Factory config, e.g. train/Uni-MuMER-train.yaml (the paper model, Qwen2.5-VL-3B)
#   key=value     LLaMA-Factory overrides, merged over the YAML exactly as `llamafactory-cli train CONFIG k=v`
#                 (e.g. output_dir=saves/run2 per_device_train_batch_size=2 gradient_accumulation_steps=64)
#
# Environment (all optional):
#   NPROC_PER_NODE  processes per node (default: the number of GPUs in CUDA_VISIBLE_DEVICES / nvidia-smi; 1 without GPU)
#   NNODES          number of nodes (default 1); NODE_RANK this node's rank, 0..NNODES-1 (default 0)
#   MASTER_ADDR     address of node 0 (required when NNODES > 1; default 127.0.0.1)
#   MASTER_PORT     port on node 0 (default: a free port on one node, 29500 on several; same value on every node)
#   SKIP_CHECK=1    do not run scripts/check_config.py first (by default the config + overrides are validated with
#                   LLaMA-Factory's parser and every dataset is checked, so a bad name fails in seconds, not hours)
#   PYTHON          interpreter for the check (default: .venv/bin/python when present, else python3); LLAMAFACTORY_CLI (default: llamafactory-cli)
#
# Multi-node: run the same command on every node with the same NNODES / MASTER_ADDR / MASTER_PORT and NODE_RANK
# 0..NNODES-1. Effective batch = NNODES x NPROC_PER_NODE x per_device_train_batch_size x gradient_accumulation_steps
# (the paper: 512); keep it at 512 by adjusting gradient_accumulation_steps when the GPU count differs.
# Resume: see docs/training.md (checkpoints need save_only_model=false to carry the optimizer state).
# Exit status: LLaMA-Factory's; 2 on bad usage; the check's 1 when the config is invalid.
set -euo pipefail

die() { echo "error: $*" >&2; exit 2; }
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    [ $# -lt 1 ] && exit 2 || exit 0
fi
CONFIG=$1; shift
[ -f "$CONFIG" ] || die "$CONFIG: config file not found"
case "$CONFIG" in *.yaml|*.yml|*.json) ;; *) die "$CONFIG: expected a .yaml / .yml / .json LLaMA-Factory config" ;; esac
for arg in "$@"; do
    [[ "$arg" =~ ^[A-Za-z_][A-Za-z0-9_.]*= ]] || die "override '$arg': expected key=value"
    [[ "$arg" =~ [[:space:]] ]] && die "override '$arg': values with spaces are split by torchrun; use a YAML file"
done

# processes per node: the visible GPUs (LLaMA-Factory's own default would be 0 on a machine without GPUs)
if [ -z "${NPROC_PER_NODE:-}" ]; then
    if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
        if [ -z "$CUDA_VISIBLE_DEVICES" ]; then NPROC_PER_NODE=1; else NPROC_PER_NODE=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .); fi
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        NPROC_PER_NODE=$(nvidia-smi -L | grep -c '^GPU')
    else
        NPROC_PER_NODE=1
    fi
    [ "$NPROC_PER_NODE" -ge 1 ] || NPROC_PER_NODE=1
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
[[ "$NNODES" =~ ^[1-9][0-9]*$ ]] || die "NNODES=$NNODES: expected a positive integer"
[[ "$NODE_RANK" =~ ^[0-9]+$ ]] && [ "$NODE_RANK" -lt "$NNODES" ] || die "NODE_RANK=$NODE_RANK: expected 0..$((NNODES - 1))"
[[ "$NPROC_PER_NODE" =~ ^[1-9][0-9]*$ ]] || die "NPROC_PER_NODE=$NPROC_PER_NODE: expected a positive integer"
if [ "$NNODES" -gt 1 ]; then
    [ -n "${MASTER_ADDR:-}" ] || die "NNODES=$NNODES: set MASTER_ADDR to node 0's address (same on every node)"
    MASTER_PORT=${MASTER_PORT:-29500}
fi
export FORCE_TORCHRUN=1 NNODES NODE_RANK NPROC_PER_NODE
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
[ -n "${MASTER_PORT:-}" ] && export MASTER_PORT

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${PYTHON:-}" ]; then  # as eval/common.sh: the checkout's venv when present, else python3
    if [ -x "$HERE/../.venv/bin/python" ]; then PYTHON="$HERE/../.venv/bin/python"; else PYTHON=python3; fi
fi
LLAMAFACTORY_CLI=${LLAMAFACTORY_CLI:-llamafactory-cli}
if [ "${SKIP_CHECK:-0}" != "1" ]; then
    echo "[train.sh] checking $CONFIG $* (SKIP_CHECK=1 to skip)"
    "$PYTHON" "$HERE/check_config.py" "$CONFIG" "$@" || { rc=$?; echo "[train.sh] $CONFIG is not valid; not launching" >&2; exit $rc; }
fi
echo "[train.sh] $LLAMAFACTORY_CLI train $CONFIG $* | nodes $NNODES (rank $NODE_RANK), $NPROC_PER_NODE process(es) per node, master ${MASTER_ADDR}:${MASTER_PORT:-auto}"
exec "$LLAMAFACTORY_CLI" train "$CONFIG" "$@"
