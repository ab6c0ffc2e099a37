"""GPU check: a tiny ModernBERT fold trained by feedback_ner.train on CUDA (bf16), then predict on its held-out
essays: the out-of-fold F1 against predict's, and the largest word-probability difference."""
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
from feedback_ner.metric import score
from feedback_ner.predict import predict
from feedback_ner.probs import load_word_probs
from feedback_ner.texts import load_texts
fold_dir, corpus = Path(sys.argv[1]), Path(sys.argv[2])
oof = load_word_probs(fold_dir / "oof.npz")
texts = load_texts(corpus / "train")
held = pd.DataFrame({"id": list(oof), "text": [texts[k] for k in oof]})
sub = predict([fold_dir / "model"], held, probs_out=Path("/tmp/p.npz"))
probs = load_word_probs("/tmp/p.npz")
diff = max(float(np.abs(probs[k] - oof[k]).max()) for k in oof)
gt = pd.read_csv(corpus / "train.csv")
m = json.loads((fold_dir / "metrics.json").read_text())
print(f"train_check: oof eval_f1 {m['eval_f1']:.6f}, predict F1 {score(sub, gt[gt['id'].isin(set(oof))]).f1:.6f}, "
      f"max |dprob| {diff:.2e} over {len(oof)} essays")
