#!/usr/bin/env bash
# eval_MNE.sh - evaluate a model on MNE N1 / N2 / N3: scripts/vllm_infer.py on data/MNE/prompts -> data/MNE/results.
# Usage: bash eval/eval_MNE.sh -m MODEL [-l LORA_DIR] [-i INPUT_DIR] [-o OUTPUT_DIR] [-b BATCH] [-c CDM_TOOLKIT] [-- vllm_infer.py options]
# Official flags -i/-o/-m kept; CUDA_VISIBLE_DEVICES is honoured, never overwritten. Run from the repository root.
set -euo pipefail
# shellcheck source=eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
eval_one_dataset MNE "$@"
