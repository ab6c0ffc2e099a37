"""One-off device probe: why are ModernBERT and Longformer slow in benchmarks.gpu? Fixed vs varying shapes,
sdpa backends, eager, and a profile. Prints ms/step and tokens/s per variant."""
import sys, time, contextlib, gc
from pathlib import Path
import torch
sys.path.insert(0, ".")
from benchmarks import gpu
from feedback_ner.synthetic.corpus import write_corpus
from feedback_ner.synthetic.models import build_tiny
from transformers import AutoModelForTokenClassification

dry = "--dry-run" in sys.argv
dev = torch.device("cpu" if dry else "cuda")
work = Path("/tmp/prof"); work.mkdir(exist_ok=True)
corpus = work / "corpus"
if not (corpus / "train.csv").is_file():
    write_corpus(corpus, n=30, seed=0, n_test=0)
specs = {s.name: s for s in gpu.SPECS}

def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()

def make(name, attn=None):
    spec = specs[name]
    tiny = work / f"tiny-{spec.family}"
    if not (tiny / "config.json").is_file():
        build_tiny(spec.family, corpus, tiny, seed=0)
    config = gpu.build_config(spec, tiny, dry)
    if attn:
        config._attn_implementation = attn
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(config)
    if spec.gradient_checkpointing and not dry:
        model.gradient_checkpointing_enable()
    return model.to(dev), spec

def steps(model, shapes, kernel=None, mask=True, gam=False, train=True, n_warm=2):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=dev.type == "cuda") if train else None
    vocab = 200
    times, toks = [], 0
    ctx = contextlib.nullcontext() if kernel is None or dry else torch.nn.attention.sdpa_kernel(kernel)
    model.train(train)
    with ctx:
        for i, (b, l) in enumerate(shapes):
            ids = torch.randint(5, vocab, (b, l), device=dev)
            kw = {"input_ids": ids}
            if mask:
                kw["attention_mask"] = torch.ones_like(ids)
            if gam:
                g = torch.zeros_like(ids); g[:, 0] = 1; kw["global_attention_mask"] = g
            if train:
                kw["labels"] = torch.randint(0, 15, (b, l), device=dev)
            sync(); t = time.perf_counter()
            ac = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
            if train:
                with ac:
                    loss = model(**kw).loss
                loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            else:
                with torch.inference_mode(), ac:
                    model(**kw)
            sync(); dt = time.perf_counter() - t
            if i >= n_warm:
                times.append(dt); toks += b * l
    return sum(times) / len(times) * 1000, toks / sum(times)

def report(label, res):
    print(f"{label}: {res[0]:.1f} ms/step, {res[1]:.0f} tokens/s", flush=True)

B = torch.nn.attention.SDPBackend
L = 128 if dry else 2048
varied = [(2, L - 8 * i) for i in range(8)]
m, _ = make("modernbert-large")
report("modernbert sdpa varied pass1", steps(m, varied))
report("modernbert sdpa varied pass2 (same shapes)", steps(m, varied))
report("modernbert sdpa eval varied pass1", steps(m, varied, train=False))
report("modernbert sdpa eval varied pass2", steps(m, varied, train=False))
v2 = [(2, L - 4 - 8 * i) for i in range(8)]
NC = [B.FLASH_ATTENTION, B.EFFICIENT_ATTENTION, B.MATH]
report("modernbert no-cudnn varied new shapes", steps(m, v2, kernel=NC))
report("modernbert no-cudnn eval varied", steps(m, v2, train=False, kernel=NC))
v3 = [(2, L - 2 - 8 * i) for i in range(8)]
report("modernbert sdpa eval new shapes batch 2", steps(m, v3, train=False))
v4 = [(8, 512 - 8 * i) for i in range(8)]
report("modernbert sdpa eval batch 8 len ~512 pass1", steps(m, v4, train=False))
report("modernbert no-cudnn eval batch 8 len ~512", steps(m, [(8, 510 - 8 * i) for i in range(8)], train=False, kernel=NC))
del m; gc.collect()
m, _ = make("deberta-v3-large")
Ld = 128 if dry else 512
vd = [(8, Ld - 8 * i) for i in range(8)]
report("deberta varied pass1", steps(m, vd))
report("deberta varied pass2", steps(m, vd))
