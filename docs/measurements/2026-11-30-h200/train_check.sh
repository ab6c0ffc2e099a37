#!/bin/bash
set -o pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_DISABLED=true
if [ -z "$LOCAL" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
fi
PY=${PY:-python3}
D=${D:-/tmp/gc}
$PY -m feedback_ner.demo --out $D --setup-only 2>&1 | tail -2
$PY -m feedback_ner.tiny --arch modernbert --corpus $D/corpus --out $D/tiny-modernbert 2>&1 | tail -1
$PY -m feedback_ner.train --config configs/demo.yaml --model_name_or_path $D/tiny-modernbert --data_dir $D/corpus \
   --output_dir $D/run --cache_dir $D/cache --use_cpu ${USE_CPU:-false} --bf16 ${BF16:-true} --folds 0 --num_train_epochs ${EPOCHS:-3} \
   --tune_trials 0 --disable_tqdm true 2>&1 | tr "\r" "\n" | grep -v "it/s]\|examples/s]\|^ *$" | tail -25
echo "train rc: ${PIPESTATUS[0]}"
$PY .gpucarry/train_check.py $D/run/fold_0 $D/corpus 2>&1 | tr "\r" "\n" | grep -v "it/s]\|examples/s]\|^ *$" | tail -5
