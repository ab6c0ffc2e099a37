"""GPU benchmark (issue 16): training tokens/s, peak memory, an MFU estimate and ``predict`` essays/s per model.

``python -m benchmarks.gpu`` on a machine with one CUDA GPU; no downloads: each model is built from its published
architecture (sizes below) with random weights, and tokenises with a tokenizer of its family trained on a generated
sample corpus (``feedback_ner.synthetic``). Speed does not depend on the weights' values, so the figures are what
the real checkpoints cost, up to the vocabulary's effect on tokens per essay. Rows:

- ``longformer-base``: 1,024-token windows, bf16, batch 4;
- ``longformer-large``: 1,536-token windows, bf16, gradient checkpointing, batch 2;
- ``deberta-v3-large``: 512-token windows (stride 128), bf16, batch 8;
- ``modernbert-large``: 2,048-token windows, bf16, batch 2, flash attention where flash-attn is installed, else sdpa.

Training uses the package's own batches (length-grouped windows, ``FeedbackCollator``, ``modeling.model_inputs``,
attention without cuDNN's per-length plans as the Trainer runs it), AdamW and bf16 autocast: ``--warmup`` untimed
steps, then ``--steps`` steps timed twice. ``train_tokens_per_s`` is the second pass over those batches (lengths seen
before, as in every epoch after the first), ``train_first_pass_tokens_per_s`` the first; both count the windows'
real tokens (padding excluded); ``mfu`` is an estimate: (6 x non-embedding parameters + 12 x layers x
hidden x attention span) FLOPs per real token, against the GPU's dense bf16 peak (``--peak-tflops``, else a table of
known GPUs). ``predict_essays_per_s`` runs ``inference.predict_word_probs`` (windows, batches longest first, forward,
merge to words) and the decoder on ``--essays`` essays with the model in memory. ``--dry-run`` runs every step with
the tiny models on the CPU (a check of the script, no figures worth reading). It refuses without CUDA otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Dense bf16 peak TFLOP/s by device-name fragment (vendor data sheets; SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "V100": 125.0,
               "T4": 65.0}


@dataclass(frozen=True)
class Spec:
    """One benchmark row: the tiny family whose tokenizer and config it starts from, the sizes of the published
    checkpoint, and the training settings."""

    name: str
    family: str
    sizes: dict[str, Any]
    max_length: int
    stride: int
    batch_size: int
    gradient_checkpointing: bool = False
    attn: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


SPECS = (
    Spec("longformer-base", "longformer",
         dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=50265,
              attention_window=[512] * 12), 1024, 128, 4),
    Spec("longformer-large", "longformer",
         dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
              vocab_size=50265, attention_window=[512] * 24), 1536, 256, 2, gradient_checkpointing=True),
    Spec("deberta-v3-large", "deberta-v2",
         dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
              vocab_size=128100), 512, 128, 8),
    Spec("modernbert-large", "modernbert",
         dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, intermediate_size=2624,
              vocab_size=50368), 2048, 256, 2),
)
NAMES = tuple(s.name for s in SPECS)


def make_parser() -> argparse.ArgumentParser:
    """Options of the GPU benchmark."""
    from feedback_ner.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(NAMES), choices=NAMES, metavar="NAME",
                        help=f"rows to run (default: all of {', '.join(NAMES)})")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per model (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first (default 3)")
    parser.add_argument("--essays", type=int, default=200, help="essays predicted per model (default 200)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the GPU's dense bf16 peak, for the MFU (default: looked up by device name)")
    parser.add_argument("--workdir", type=Path, default=None, help="folder for the corpus and tokenizers (default: "
                                                                   "a temporary folder)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny models on the CPU, one step each: checks the script, measures nothing")
    return parser


def check_args(args: argparse.Namespace) -> str | None:
    """Why the run cannot start, or None: it needs CUDA unless it is a dry run, and positive counts."""
    for name in ("steps", "essays"):
        if getattr(args, name) < 1:
            return f"--{name} {getattr(args, name)}: use a positive number"
    if args.warmup < 0:
        return f"--warmup {args.warmup}: use 0 or more"
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        return f"--peak-tflops {args.peak_tflops}: use the GPU's dense bf16 peak in TFLOP/s, e.g. 989 for an H100"
    if not args.dry_run and not torch.cuda.is_available():
        return (f"CUDA is not available (torch {torch.__version__}, no GPU found): run it on a GPU machine with a CUDA "
                "build of torch (make install TORCH_SPEC=torch), or pass --dry-run to check the script on the CPU")
    return None


def peak_flops(device_name: str, override: float | None) -> float | None:
    """The dense bf16 peak FLOP/s: ``override`` (TFLOP/s), else the table's entry for the device, else None."""
    if override is not None:
        return override * 1e12
    for fragment, tflops in PEAK_TFLOPS.items():
        if fragment in device_name:
            return tflops * 1e12
    return None


def flops_per_token(model: torch.nn.Module, config: Any, seq_len: float) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters + 12 x layers x hidden x attention span."""
    embedding = sum(p.numel() for name, p in model.named_parameters() if "embeddings" in name)
    dense = sum(p.numel() for p in model.parameters()) - embedding
    span = seq_len
    if config.model_type == "longformer":
        window = config.attention_window
        span = min(seq_len, float(window[0] if isinstance(window, (list, tuple)) else window))
    elif config.model_type == "modernbert":  # one layer in global_attn_every_n_layers is global, the rest local
        every = config.global_attn_every_n_layers
        span = (seq_len + (every - 1) * min(seq_len, config.local_attention)) / every
    return 6.0 * dense + 12.0 * config.num_hidden_layers * config.hidden_size * span


def build_config(spec: Spec, tiny_dir: Path, dry_run: bool = False) -> Any:
    """The row's model config: the tiny folder's (its tokenizer's special ids) grown to the published sizes."""
    from transformers import AutoConfig

    from feedback_ner.modeling import resolve_attn_implementation

    config = AutoConfig.from_pretrained(tiny_dir)
    if not dry_run:  # rebuilt, not updated: fields derived from the layer count (ModernBERT's layer_types) follow
        values = {k: v for k, v in config.to_dict().items() if k != "layer_types"}
        config = type(config).from_dict({**values, **spec.sizes})
    attn = resolve_attn_implementation(spec.attn, config)
    if attn is not None:
        config._attn_implementation = attn
    return config


def build_model(spec: Spec, tiny_dir: Path, dry_run: bool, device: torch.device) -> torch.nn.Module:
    """The row's model with random weights."""
    from transformers import AutoModelForTokenClassification

    config = build_config(spec, tiny_dir, dry_run)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_config(config)
    if spec.gradient_checkpointing:
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    return model.to(device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def train_figures(model: torch.nn.Module, windows: Any, tokenizer: Any, spec: Spec, steps: int, warmup: int,
                  device: torch.device) -> dict[str, float]:
    """Seconds, real and computed tokens of ``steps`` training steps on length-grouped batches, and peak memory.

    The ``steps`` batches are timed twice: a first pass, where nearly every batch has a length not seen before
    (kernels that plan per shape pay here), and a second pass over the same batches, as every later epoch sees
    them. ``warmup`` untimed steps on other batches come first."""
    from feedback_ner.modeling import encoder_config, model_inputs, varied_length_attention
    from feedback_ner.windows import FeedbackCollator, LengthGroupedBatches, pad_multiple_for

    collator = FeedbackCollator(tokenizer, pad_to_multiple_of=pad_multiple_for(encoder_config(model.config)))
    order = list(LengthGroupedBatches(windows.lengths, spec.batch_size, generator=torch.Generator().manual_seed(0)))
    batches = [np.asarray(order[i : i + spec.batch_size]) for i in range(0, len(order), spec.batch_size)]
    batches = [batches[i % len(batches)] for i in range(warmup + steps)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run_steps(rows_list: list[np.ndarray]) -> tuple[float, int, int]:
        real = computed = 0
        _sync(device)
        start = time.perf_counter()
        for rows in rows_list:
            batch = collator(windows.features(rows))
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with varied_length_attention(device):  # the backward too (gradient checkpointing recomputes)
                with autocast(device):
                    loss = model(**model_inputs(batch, model.config, collator.pad_id)).loss
                loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            real += int(batch["attention_mask"].sum())
            computed += batch["input_ids"].numel()
        _sync(device)
        return time.perf_counter() - start, real, computed

    run_steps(batches[:warmup])
    first_seconds, _, _ = run_steps(batches[warmup:])
    seconds, real, computed = run_steps(batches[warmup:])
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"seconds": seconds, "first_seconds": first_seconds, "real": real, "computed": computed,
            "peak_gib": peak}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def predict_seconds(model: torch.nn.Module, tokenizer: Any, table: Any, spec: Spec, device: torch.device) -> float:
    """Wall seconds of ``predict``'s path (windows, forward, merge, decode) over the essays of ``table``."""
    from feedback_ner.artifacts import InferenceConfig
    from feedback_ner.inference import Checkpoint, predict_word_probs
    from feedback_ner.postprocess import submission_from_probs

    model.eval()
    ckpt = Checkpoint(Path("benchmark"), InferenceConfig(max_length=spec.max_length, stride=spec.stride), tokenizer,
                      model)
    _sync(device)
    start = time.perf_counter()
    probs = predict_word_probs(ckpt, table, batch_size=2 * spec.batch_size, desc=f"predict {spec.name}")
    submission_from_probs(probs)
    _sync(device)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    """Every selected row in turn; prints ``name: value`` lines."""
    from transformers import AutoTokenizer

    from feedback_ner.corpus import load_train
    from feedback_ner.inference import WindowArrays
    from feedback_ner.synthetic.corpus import write_corpus
    from feedback_ner.synthetic.models import build_tiny
    from feedback_ner.windows import tokenize_windows
    from feedback_ner.wordtable import build_word_table, test_word_table

    device = torch.device("cpu" if args.dry_run else "cuda")
    device_name = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(device)
    peak = None if args.dry_run else peak_flops(device_name, args.peak_tflops)
    print(f"gpu_device: {device_name}")
    print(f"gpu_peak_tflops: {peak / 1e12 if peak else 'unknown (pass --peak-tflops)'}", flush=True)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="feedback_ner_gpu_")))
        n_train = 40 if args.dry_run else 300
        corpus = workdir / "corpus"
        if not (corpus / "train.csv").is_file():
            write_corpus(corpus, n=n_train, seed=0, n_test=args.essays)
        table = build_word_table(load_train(corpus))
        texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted((corpus / "test").glob("*.txt"))}
        test_table = test_word_table(dict(list(texts.items())[: args.essays]))
        for spec in SPECS:
            if spec.name not in args.models:
                continue
            if args.dry_run:
                spec = Spec(spec.name, spec.family, spec.sizes, 128, 16, 2, spec.gradient_checkpointing, spec.attn)
            tiny_dir = workdir / f"tiny-{spec.family}"
            if not (tiny_dir / "config.json").is_file():
                build_tiny(spec.family, corpus, tiny_dir, seed=0)
            tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
            windows = WindowArrays(tokenize_windows(table, tokenizer, spec.max_length, spec.stride))
            model = build_model(spec, tiny_dir, args.dry_run, device)
            key = spec.name.replace("-", "_")
            train = train_figures(model, windows, tokenizer, spec, args.steps, args.warmup, device)
            mean_len = float(windows.lengths.mean())
            tokens_per_s = train["real"] / train["seconds"]
            print(f"gpu_{key}_attn: {model.config._attn_implementation}")
            print(f"gpu_{key}_params_m: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}")
            print(f"gpu_{key}_train_tokens_per_s: {tokens_per_s:.0f}")
            print(f"gpu_{key}_train_first_pass_tokens_per_s: {train['real'] / train['first_seconds']:.0f}")
            print(f"gpu_{key}_train_pad_share: {1 - train['real'] / train['computed']:.3f}")
            print(f"gpu_{key}_peak_memory_gib: {train['peak_gib']:.2f}")
            if peak:
                mfu = tokens_per_s * flops_per_token(model, model.config, mean_len) / peak
                print(f"gpu_{key}_mfu: {mfu:.3f}")
            seconds = predict_seconds(model, tokenizer, test_table, spec, device)
            print(f"gpu_{key}_predict_essays_per_s: {len(test_table) / seconds:.1f}", flush=True)
            del model, windows
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse, refuse without CUDA (one line, exit 2), run."""
    args = make_parser().parse_args(argv)
    problem = check_args(args)
    if problem:
        print(f"benchmarks.gpu: error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("transformers", "datasets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    start = time.perf_counter()
    code = run(args)
    print(f"gpu_total_s: {time.perf_counter() - start:.1f}")
    return code


if __name__ == "__main__":
    sys.exit(main())
