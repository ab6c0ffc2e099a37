"""Issue 16: the CPU-side parts of ``benchmarks/gpu.py``: options, refusal without CUDA, model sizes, a dry run."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForTokenClassification

from benchmarks import gpu

# Published parameter counts (millions) of the checkpoints each row stands for.
PUBLISHED_M = {
    "longformer-base": 148.7, "longformer-large": 434.6, "deberta-v3-large": 435.1, "modernbert-large": 395.8
}
FAMILY_ARCH = {"longformer": "longformer", "deberta-v2": "deberta-v2", "modernbert": "modernbert"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available: the benchmark would run")
def test_refuses_without_cuda_in_one_line(capsys):
    assert gpu.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("benchmarks.gpu: error: CUDA is not available") and "--dry-run" in err[0]


@pytest.mark.parametrize("argv,needle", [(["--steps", "0"], "--steps 0"), (["--peak-tflops", "-1"], "--peak-tflops"),
                                         (["--essays", "0", "--dry-run"], "--essays 0")])
def test_bad_options_are_refused(argv, needle, capsys):
    assert gpu.main(argv) == 2
    assert needle in capsys.readouterr().err


def test_unknown_model_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu.make_parser().parse_args(["--models", "gpt2"])
    assert exit_info.value.code == 2 and "gpt2" in capsys.readouterr().err


def test_peak_flops_lookup():
    assert gpu.peak_flops("NVIDIA H200", None) == 989e12
    assert gpu.peak_flops("NVIDIA A100-SXM4-80GB", None) == 312e12
    assert gpu.peak_flops("Some GPU", None) is None and gpu.peak_flops("Some GPU", 100.0) == 100e12


@pytest.mark.parametrize("spec", gpu.SPECS, ids=lambda s: s.name)
def test_rows_have_the_published_sizes(spec, tiny_models):
    """Each row's random model has its checkpoint's parameter count (within 2%), built on the meta device."""
    config = gpu.build_config(spec, tiny_models(FAMILY_ARCH[spec.family]))
    with torch.device("meta"):
        model = AutoModelForTokenClassification.from_config(config)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert n == pytest.approx(PUBLISHED_M[spec.name], rel=0.02)
    assert gpu.flops_per_token(model, config, spec.max_length) > 6 * (n * 1e6 - config.vocab_size * config.hidden_size)


def test_dry_run_prints_every_row(tmp_path, capsys):
    """The whole script on tiny models on the CPU: each row prints its figures."""
    assert gpu.main(["--dry-run", "--steps", "1", "--warmup", "0", "--essays", "2", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for spec in gpu.SPECS:
        key = spec.name.replace("-", "_")
        for what in ("train_tokens_per_s", "peak_memory_gib", "predict_essays_per_s"):
            assert f"gpu_{key}_{what}: " in out
