#!/usr/bin/env bash
# eval_all.sh - unified evaluation entry point: every test set present under DATA_ROOT, then the summary table.
#
# Usage: bash eval/eval_all.sh -m MODEL [-l LORA_DIR] [-s SUFFIX] [-b BATCH] [-d DATA_ROOT] [-c CDM_TOOLKIT] [-k]
#                               [-- vllm_infer.py options]
#   -m / --model MODEL        model folder or Hugging Face id (required)
#   -l / --lora DIR           LoRA adapter folder applied on top of MODEL (vllm_infer.py --lora)
#   -s / --suffix SUFFIX      results folder suffix: DATA_ROOT/<DATASET>/results_SUFFIX (default: the model
#                             argument, plus "+" and the adapter path with -l, every character outside
#                             [A-Za-z0-9._-] made "_", so two models' results never share a folder;
#                             vllm_infer.py also refuses another run's predictions)
#   -b / --batch-size N       records per generate call / progress flush
#   -d / --data-root DIR      where the datasets live (default: data)
#   -c / --cdm VERSION        also ExpRate@CDM with that official CDM toolkit version (2025-09, or 2025-03 as in
#                             the paper): <stem>_cdm.json per split, the summary's CDM column names the version
#   -k / --canonicalize       also the canonical ExpRate (free-form answers scored fairly) in each split's report
#   -- ARGS...                passed unchanged to scripts/vllm_infer.py (e.g. -- --data-parallel-size 4)
# For each of CROHME, CROHME2023, HME100K, MathWriting, Im2LaTeXv2, MNE: runs eval/eval_<dataset>.sh on
# DATA_ROOT/<DATASET>/prompts (skipped with a message when that folder has no *.json), writing
# <stem>_pred.json and <stem>_results.txt (official layout); then prints the cross-dataset summary
# (scripts/summarize_results.py: ExpRate, Error<=1/2/3, BLEU-4 next to the paper's numbers).
# Run from the repository root (prompt files say ./data/...). CUDA_VISIBLE_DEVICES is honoured as set by the
# caller, never overwritten. Resumable: rerun the same command after an interruption.
# Exit status: 0; 1 when some dataset failed (the others still run); 2 on bad usage or when no dataset is found.
set -euo pipefail
# shellcheck source=eval/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MODEL="" SUFFIX="" BATCH="" DATA_ROOT="data" LORA="" CDM="" CANONICAL=""
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -m|--model)      [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }; MODEL="$2"; shift 2 ;;
    -l|--lora)       [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }; LORA="$2"; shift 2 ;;
    -s|--suffix)     [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }; SUFFIX="$2"; shift 2 ;;
    -b|--batch-size|--batch_size)
                     [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }; BATCH="$2"; shift 2 ;;
    -d|--data-root)  [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }; DATA_ROOT="$2"; shift 2 ;;
    -c|--cdm)        [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }; CDM="$2"; shift 2 ;;
    -k|--canonicalize) CANONICAL=1; shift ;;
    -h|--help)       usage; exit 0 ;;
    --)              shift; EXTRA=("$@"); break ;;
    *)               echo "error: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ -n "$MODEL" ]] || { echo "error: -m/--model is required" >&2; usage >&2; exit 2; }
if [[ -n "$CDM" ]]; then check_cdm_toolkit "$CDM" || exit 2; fi
if [[ -z "$SUFFIX" ]]; then
  SUFFIX="$(printf '%s' "${MODEL%/}${LORA:++${LORA%/}}" | sed -e 's#^\./##' -e 's#[^A-Za-z0-9._-]#_#g' -e 's#^_*##')"
fi

scripts=(eval_crohme.sh eval_crohme2023.sh eval_hme100k.sh eval_mathwriting.sh eval_im2latexv2.sh eval_MNE.sh)
datasets=(CROHME CROHME2023 HME100K MathWriting Im2LaTeXv2 MNE)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

echo "[INFO] model: $MODEL${LORA:+ + LoRA adapter $LORA}; data root: $DATA_ROOT; GPU(s): ${CUDA_VISIBLE_DEVICES-all visible}"
ran=() failed=() skipped=()
for i in "${!datasets[@]}"; do
  ds="${datasets[i]}"
  in_dir="${DATA_ROOT}/${ds}/prompts"
  out_dir="${DATA_ROOT}/${ds}/results${SUFFIX:+_"$SUFFIX"}"
  if ! compgen -G "${in_dir}/*.json" >/dev/null; then
    echo "[SKIP] ${ds}: no prompt files in ${in_dir}"
    skipped+=("$ds")
    continue
  fi
  echo "----------------------------------------"
  echo "[INFO] ${ds}: ${in_dir} -> ${out_dir}"
  args=(-m "$MODEL" -i "$in_dir" -o "$out_dir")
  [[ -n "$BATCH" ]] && args+=(-b "$BATCH")
  [[ -n "$LORA" ]] && args+=(-l "$LORA")
  [[ -n "$CDM" ]] && args+=(-c "$CDM")
  [[ -n "$CANONICAL" ]] && args+=(-k)
  if bash "${here}/${scripts[i]}" "${args[@]}" -- "${EXTRA[@]+"${EXTRA[@]}"}"; then
    ran+=("$out_dir")
  else
    echo "[ERROR] ${ds} failed (rerun to resume)" >&2
    failed+=("$ds")
  fi
done
echo "----------------------------------------"
if [[ ${#ran[@]} -eq 0 && ${#failed[@]} -eq 0 ]]; then
  echo "error: no dataset found under ${DATA_ROOT} (expected <DATASET>/prompts/*.json)" >&2
  exit 2
fi
[[ ${#skipped[@]} -gt 0 ]] && echo "[INFO] skipped (absent): ${skipped[*]}"
if [[ ${#ran[@]} -gt 0 ]]; then
  echo
  echo "Summary (${MODEL}):"
  "$(unimumer_python)" "${UNIMUMER_ROOT}/scripts/summarize_results.py" "${ran[@]}" ${CDM:+--cdm-toolkit "$CDM"}
fi
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "error: failed: ${failed[*]}" >&2
  exit 1
fi
