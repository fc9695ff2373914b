#!/usr/bin/env bash
# eval_im2latexv2.sh - evaluate a model on Im2LaTeXv2 (raw and normalized): scripts/vllm_infer.py on data/Im2LaTeXv2/prompts -> data/Im2LaTeXv2/results.
# Usage: bash eval/eval_im2latexv2.sh -m MODEL [-l LORA_DIR] [-i INPUT_DIR] [-o OUTPUT_DIR] [-b BATCH] [-c CDM_TOOLKIT] [-- vllm_infer.py options]
# Official flags -i/-o/-m kept; CUDA_VISIBLE_DEVICES is honoured, never overwritten. Run from the repository root.
set -euo pipefail
# shellcheck source=eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
eval_one_dataset Im2LaTeXv2 "$@"
