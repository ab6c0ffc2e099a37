#!/bin/bash
# Device check for issue 16: benchmarks.gpu (all rows) and predict_vs_pipeline on the GPU.
set -o pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD
python3 - <<'PY' 2>&1 | tee $OUT/env.txt
import importlib
for m in ("torch", "transformers", "tokenizers", "datasets", "pyarrow", "fsspec", "numpy", "pandas", "accelerate",
          "huggingface_hub"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:
        print(m, "FAILED", type(e).__name__, e)
import torch; print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
try:
    import flash_attn; print("flash_attn", flash_attn.__version__)
except Exception as e:
    print("flash_attn missing", type(e).__name__)
PY
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a $OUT/env.txt
date -u | tee -a $OUT/env.txt
timeout ${GPU_LIMIT:-300} python3 -m benchmarks.gpu --workdir /tmp/gpuwork 2>&1 | tee $OUT/gpu.log | tr "\r" "\n" | grep -v "it/s]\|examples/s]\|batch/s]\|^ *$"
echo "gpu rc: ${PIPESTATUS[0]}"
for bs in 32; do
  timeout ${PRED_LIMIT:-130} python3 -m benchmarks.bench_predict --device cuda --model .gpucarry/minilm --essays 1000 \
      --batch-size $bs --repeats 2 2>&1 | tee $OUT/predict_b$bs.log | tr "\r" "\n" | grep -v "it/s]\|examples/s]\|batch/s]\|^ *$"
  echo "predict rc: ${PIPESTATUS[0]}"
done
date -u | tee -a $OUT/env.txt
python3 - <<'PY' 2>&1 | tee $OUT/cuda_flags.txt
import torch
from feedback_ner.modeling import varied_length_attention
b = torch.backends.cuda
print("before", b.cudnn_sdp_enabled())
with varied_length_attention(torch.device("cuda")):
    print("inside", b.cudnn_sdp_enabled(), b.flash_sdp_enabled(), b.mem_efficient_sdp_enabled())
print("after", b.cudnn_sdp_enabled())
PY
