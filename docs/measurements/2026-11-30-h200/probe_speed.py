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
fixed = [(2, L)] * 7
varied = [(2, L - 8 * i) for i in range(7)]
# ModernBERT
m, _ = make("modernbert-large")
report("modernbert sdpa fixed", steps(m, fixed))
report("modernbert sdpa varied", steps(m, varied))
report("modernbert sdpa fixed no-mask", steps(m, fixed, mask=False))
report("modernbert sdpa fixed EFFICIENT only", steps(m, fixed, kernel=[B.EFFICIENT_ATTENTION]))
report("modernbert sdpa varied EFFICIENT only", steps(m, varied, kernel=[B.EFFICIENT_ATTENTION]))
report("modernbert sdpa fixed MATH only", steps(m, fixed[:4], kernel=[B.MATH]))
report("modernbert sdpa eval fixed", steps(m, fixed, train=False))
report("modernbert sdpa eval varied", steps(m, varied, train=False))
if not dry:
    from torch.profiler import profile, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        steps(m, varied[:3], n_warm=0)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=60))
m.config._attn_implementation = "eager"
report("modernbert eager fixed", steps(m, fixed[:4]))
del m; gc.collect(); torch.cuda.empty_cache() if not dry else None
# Longformer base: with and without global attention, fixed shapes
m, _ = make("longformer-base")
Lf = 128 if dry else 1024
report("longformer-base gam fixed", steps(m, [(4, Lf)] * 6, gam=True))
report("longformer-base no-gam fixed", steps(m, [(4, Lf)] * 6, gam=False))
report("longformer-base eval gam fixed", steps(m, [(4, Lf)] * 6, gam=True, train=False))
if not dry:
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        steps(m, [(4, Lf)] * 2, gam=True, n_warm=0)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))
del m; gc.collect()
# DeBERTa: fixed vs varied
m, _ = make("deberta-v3-large")
Ld = 128 if dry else 512
report("deberta fixed", steps(m, [(8, Ld)] * 6))
report("deberta varied", steps(m, [(8, Ld - 8 * i) for i in range(6)]))
report("deberta fixed batch 32", steps(m, [(32, Ld)] * 5))
