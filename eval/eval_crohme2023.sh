#!/usr/bin/env bash
# eval_crohme2023.sh - evaluate a model on CROHME 2023 (raw and normalized): scripts/vllm_infer.py on data/CROHME2023/prompts -> data/CROHME2023/results.
# Usage: bash eval/eval_crohme2023.sh -m MODEL [-l LORA_DIR] [-i INPUT_DIR] [-o OUTPUT_DIR] [-b BATCH] [-c CDM_TOOLKIT] [-- vllm_infer.py options]
# Official flags -i/-o/-m kept; CUDA_VISIBLE_DEVICES is honoured, never overwritten. Run from the repository root.
set -euo pipefail
# shellcheck source=eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
eval_one_dataset CROHME2023 "$@"
