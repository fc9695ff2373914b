#!/usr/bin/env bash
# eval/common.sh - shared by eval/eval_*.sh (sourced, not run on its own).
#
# eval_one_dataset NAME ARGS...   runs scripts/vllm_infer.py on data/NAME/prompts -> data/NAME/results
#   -i / --input-dir DIR    prompt files (default: data/NAME/prompts)
#   -o / --output-dir DIR   predictions + reports (default: data/NAME/results)
#   -m / --model MODEL      model folder or Hugging Face id (required, except with -- --backend openai ...: a
#                           model behind an OpenAI-compatible endpoint, named by --base-url / --api-model)
#   -b / --batch-size N     records per generate call / progress flush (default: the script's, 256)
#   -l / --lora DIR         LoRA adapter folder applied on top of MODEL (vllm_infer.py --lora; default: none)
#   -c / --cdm VERSION      afterwards, ExpRate@CDM of every prediction file with that official CDM toolkit version
#                           (2025-09 or 2025-03, the paper's): scripts/eval_metrics_calculator.py --cdm --cdm-toolkit
#                           VERSION on OUTPUT_DIR writes <stem>_cdm.json and adds one ExpRate@CDM line to each report
#   -k / --canonicalize     afterwards, also the canonical ExpRate of every prediction file (free-form answers of a
#                           general VLM: formula extracted, spellings unified; docs/analysis.md): one more line in
#                           each report, next to the raw ExpRate (scripts/eval_metrics_calculator.py --canonicalize)
#   -- ARGS...              passed unchanged to scripts/vllm_infer.py (e.g. -- --data-parallel-size 4)
# Environment: PYTHON (interpreter; default: the checkout's .venv/bin/python when present, else python3);
# CUDA_VISIBLE_DEVICES is honoured as set by the caller and never overwritten (the official scripts forced GPU 0 / 1).
# The output folder is made by vllm_infer.py after its output check (an unwritable one: one error: line, exit 2).

UNIMUMER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The interpreter: $PYTHON when set (an explicit choice), else the checkout's .venv/bin/python (make env), else
# python3 from PATH. A bare `python` from PATH is never guessed: outside the venv it lacks the dependencies.
unimumer_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
  elif [[ -x "${UNIMUMER_ROOT}/.venv/bin/python" ]]; then echo "${UNIMUMER_ROOT}/.venv/bin/python"
  else echo python3
  fi
}

eval_one_dataset() {
  local name="$1"; shift
  local input_dir="data/${name}/prompts" output_dir="data/${name}/results" model="" batch="" lora="" cdm="" canonical=""
  local -a extra=()
  local script
  script="$(basename "${BASH_SOURCE[1]:-$0}")"
  local usage="Usage: ${script} -m MODEL [-l LORA_DIR] [-i INPUT_DIR] [-o OUTPUT_DIR] [-b BATCH] [-c CDM_TOOLKIT] [-k] [-- vllm_infer.py options]
Runs scripts/vllm_infer.py on the ${name} prompt files (default ${input_dir}) and writes <stem>_pred.json and
<stem>_results.txt (official layout) to OUTPUT_DIR (default ${output_dir}). Run from the repository root: the
prompt files' image paths (./data/...) are relative to it. CUDA_VISIBLE_DEVICES is used as you set it.
Endpoint: leave -m out and pass -- --backend openai --base-url URL --api-model NAME [--api-key-env VAR].
-l LORA_DIR applies a LoRA adapter (train/lora/ output) on top of MODEL (vllm_infer.py --lora).
-c CDM_TOOLKIT then adds ExpRate@CDM with that official CDM toolkit version (2025-09, or 2025-03 as in the paper):
<stem>_cdm.json and one ExpRate@CDM line in each report (needs TeX Live + poppler).
-k then adds the canonical ExpRate (formula extracted from free-form answers, spellings unified) to each report.
Resumable: rerun the same command after an interruption."
  while [[ $# -gt 0 ]]; do
    case "$1" in
      -i|--input-dir)  [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; return 2; }; input_dir="$2"; shift 2 ;;
      -o|--output-dir) [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; return 2; }; output_dir="$2"; shift 2 ;;
      -m|--model)      [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; return 2; }; model="$2"; shift 2 ;;
      -l|--lora)       [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; return 2; }; lora="$2"; shift 2 ;;
      -c|--cdm)        [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; return 2; }; cdm="$2"; shift 2 ;;
      -k|--canonicalize) canonical=1; shift ;;
      -b|--batch-size|--batch_size)
                       [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; return 2; }; batch="$2"; shift 2 ;;
      -h|--help)       echo "$usage"; return 0 ;;
      --)              shift; extra=("$@"); break ;;
      *)               echo "error: unknown option: $1" >&2; echo "$usage" >&2; return 2 ;;
    esac
  done
  local endpoint="" prev="" arg
  for arg in "${extra[@]+"${extra[@]}"}"; do  # -- --backend openai: the endpoint serves the model, no -m
    if [[ "$arg" == "--backend=openai" || ( "$prev" == "--backend" && "$arg" == "openai" ) ]]; then endpoint=1; fi
    prev="$arg"
  done
  if [[ -n "$endpoint" && -n "$model" ]]; then
    echo "error: -m/--model names a local model; with --backend openai pass --api-model after --" >&2; return 2
  fi
  if [[ -z "$model" && -z "$endpoint" ]]; then echo "error: -m/--model is required" >&2; echo "$usage" >&2; return 2; fi
  if [[ ! -d "$input_dir" ]]; then echo "error: ${input_dir}: input folder not found" >&2; return 2; fi
  if [[ -n "$cdm" ]]; then check_cdm_toolkit "$cdm" || return 2; fi
  echo "[INFO] ${name}: GPU(s): ${CUDA_VISIBLE_DEVICES-all visible}" >&2
  local -a cmd=("$(unimumer_python)" "${UNIMUMER_ROOT}/scripts/vllm_infer.py"
                --input-dir "$input_dir" --output-dir "$output_dir")
  [[ -n "$model" ]] && cmd+=(--model "$model")
  [[ -n "$batch" ]] && cmd+=(--batch_size "$batch")
  [[ -n "$lora" ]] && cmd+=(--lora "$lora")
  cmd+=("${extra[@]+"${extra[@]}"}")
  echo "[INFO] ${cmd[*]}" >&2
  "${cmd[@]}"
  if [[ -n "$cdm" || -n "$canonical" ]]; then
    local -a score=("$(unimumer_python)" "${UNIMUMER_ROOT}/scripts/eval_metrics_calculator.py" --input "$output_dir")
    [[ -n "$cdm" ]] && score+=(--cdm --cdm-toolkit "$cdm")
    [[ -n "$canonical" ]] && score+=(--canonicalize)
    echo "[INFO] ${score[*]}" >&2
    "${score[@]}"
  fi
}

# check_cdm_toolkit VERSION: 0 when VERSION is an official CDM toolkit version unimumer.evaluation.cdm reproduces, else one
# "error:" line and 1 (checked before any inference runs).
check_cdm_toolkit() {
  PYTHONPATH="${UNIMUMER_ROOT}${PYTHONPATH:+:$PYTHONPATH}" "$(unimumer_python)" -c '
import sys
from unimumer.evaluation.cdm.toolkit import TOOLKITS
names = ", ".join(TOOLKITS)
if sys.argv[1] not in TOOLKITS:
    sys.exit(f"error: unknown CDM toolkit version {sys.argv[1]!r} (expected one of {names})")
' "$1"
}
