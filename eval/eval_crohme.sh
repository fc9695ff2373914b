#!/usr/bin/env bash
# eval_crohme.sh - evaluate a model on CROHME 2014 / 2016 / 2019: scripts/vllm_infer.py on data/CROHME/prompts -> data/CROHME/results.
# Usage: bash eval/eval_crohme.sh -m MODEL [-l LORA_DIR] [-i INPUT_DIR] [-o OUTPUT_DIR] [-b BATCH] [-c CDM_TOOLKIT] [-- vllm_infer.py options]
# Official flags -i/-o/-m kept; CUDA_VISIBLE_DEVICES is honoured, never overwritten. Run from the repository root.
set -euo pipefail
# shellcheck source=eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
eval_one_dataset CROHME "$@"
