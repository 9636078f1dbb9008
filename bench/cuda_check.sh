#!/usr/bin/env bash
# The CUDA path on a machine with a GPU: the CUDA graph tests; decode speed of a GPT-B (fp32, bf16, fp16)
# against the bandwidth floor, with and without CUDA graphs; SJD against plain decoding; the built-in model's
# evaluation in each precision on the GPU (the same seeds as on the CPU, so the rates compare with the
# README's); and the README's main job on the GPU.
#   [DTYPES="fp32 bf16"] bash bench/cuda_check.sh [OUTDIR]
set -euo pipefail
out=${1:-cuda_check}
dtypes=${DTYPES:-fp32 bf16 fp16}
mkdir -p "$out"
export PYTHONPATH=. PYTHONUNBUFFERED=1
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
if python3 -c "import pytest" 2>/dev/null; then  # CUDA graphs' tests: replayed passes draw the plain passes' tokens
  python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py
else
  echo "pytest missing: tests/test_cuda_graphs.py not run"
fi
for dtype in $dtypes; do
  python3 bench/decode_speed.py --device cuda --dtype "$dtype"
done
python3 bench/sjd_speed.py --device cuda --images 4 --windows 8 16  # speculative decoding where passes are cheap
for dtype in $dtypes; do
  python3 -m gptimg_core.builtin.eval --device cuda --dtype "$dtype" --json "$out/eval_cuda_$dtype.json"
done
time python3 -m gptimg_core generate --device cuda --prompt "a red circle on a blue background" --out "$out/cuda.png"
