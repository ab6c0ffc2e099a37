"""Heads and per-architecture input rules (issue 5)."""

from __future__ import annotations

import pytest
import torch
from conftest import small_config
from transformers import AutoModelForTokenClassification, AutoTokenizer, TrainerCallback

from feedback_ner.config import parse_config
from feedback_ner.kfold import build_trainer, fold_data, load_data
from feedback_ner.modeling import (
    FeedbackTokenClassifier,
    bigbird_min_length,
    build_model,
    model_inputs,
    token_loss,
    trim_to,
)
from feedback_ner.postprocess import PostprocessConfig


def _batch(length: int) -> dict[str, torch.Tensor]:
    x = torch.randint(5, 100, (2, length))
    return {
        "input_ids": x,
        "attention_mask": torch.ones_like(x),
        "labels": torch.zeros_like(x),
        "word_ids": torch.arange(length).repeat(2, 1),
        "essay_index": torch.tensor([0, 1]),
    }


def test_custom_head_over_longformer_runs_and_reloads(tiny_models, tmp_path):
    """Regression: the wrapped Longformer lost its attention implementation and crashed building its masks."""
    model = build_model(str(tiny_models("longformer")), head="gru", rnn_hidden_size=8)
    inputs = model_inputs(_batch(96), model.config)
    assert "word_ids" not in inputs and inputs["global_attention_mask"][:, 0].eq(1).all()
    loss = model(**inputs).loss
    loss.backward()
    assert torch.isfinite(loss)
    model.save_pretrained(tmp_path)
    again = AutoModelForTokenClassification.from_pretrained(tmp_path)
    model.eval(), again.eval()
    assert torch.allclose(model(**inputs).logits, again(**inputs).logits)


def test_classifier_dropout_on_a_config_without_it_uses_our_head(tiny_models):
    model = build_model(str(tiny_models("longformer")), classifier_dropout=0.3)
    assert isinstance(model, FeedbackTokenClassifier) and model.dropout.p == 0.3
    stock = build_model(str(tiny_models("bert")), classifier_dropout=0.3)
    assert not isinstance(stock, FeedbackTokenClassifier) and stock.config.classifier_dropout == 0.3


def test_bigbird_short_batches_are_padded_to_stay_block_sparse(tiny_models):
    model = build_model(str(tiny_models("bigbird")))
    min_len = bigbird_min_length(model.config)
    assert min_len is not None and min_len > 40
    inputs = model_inputs(_batch(40), model.config, pad_token_id=1)
    assert inputs["input_ids"].shape[1] == min_len
    assert inputs["attention_mask"][:, 40:].eq(0).all() and inputs["labels"][:, 40:].eq(-100).all()
    logits = trim_to(model(**inputs).logits, 40)
    assert logits.shape == (2, 40, 15)
    assert model.bert.attention_type == "block_sparse"
    # without our padding, transformers would have switched this model to full attention for good
    raw = build_model(str(tiny_models("bigbird")))
    raw(**{k: v for k, v in _batch(40).items() if k not in ("word_ids", "essay_index")})
    assert raw.bert.attention_type == "original_full"


def test_packaged_model_names_stay_in_configs_and_resolve_at_load_time(tmp_path, monkeypatch):
    """Issue 17: ``pkg:<module>`` is kept in ModelArguments (and so in saved configs), resolved only when loading."""
    import pytest

    from feedback_ner.config import ModelArguments
    from feedback_ner.errors import FeedbackError
    from feedback_ner.modeling import resolve_model_path

    (tmp_path / "fake_packaged_encoder.py").write_text(f"def get_model_path():\n    return {str(tmp_path)!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ModelArguments(model_name_or_path="pkg:fake_packaged_encoder")
    assert args.model_name_or_path == "pkg:fake_packaged_encoder"
    assert resolve_model_path(args.model_name_or_path) == str(tmp_path)
    assert resolve_model_path("some/folder") == "some/folder"
    with pytest.raises(FeedbackError, match="'no_such_package_here' is not installed"):
        ModelArguments(model_name_or_path="pkg:no_such_package_here")


def test_varied_length_attention_drops_cudnn_on_cuda_only():
    """Issue 16: on CUDA our many-length batches run SDPA without cuDNN (a plan per new length); the flags come back
    afterwards, and on the CPU nothing changes."""
    from feedback_ner.modeling import varied_length_attention

    backends = torch.backends.cuda
    before = (backends.cudnn_sdp_enabled(), backends.flash_sdp_enabled(), backends.mem_efficient_sdp_enabled())
    assert before[0], "cuDNN attention is off before the test: the check below would prove nothing"
    with varied_length_attention("cpu"):
        assert backends.cudnn_sdp_enabled()
    with varied_length_attention(torch.device("cuda", 0)):
        assert not backends.cudnn_sdp_enabled()
        assert backends.flash_sdp_enabled() and backends.mem_efficient_sdp_enabled() and backends.math_sdp_enabled()
    assert (backends.cudnn_sdp_enabled(), backends.flash_sdp_enabled(), backends.mem_efficient_sdp_enabled()) == before
    backends.enable_flash_sdp(False)  # a backend the user turned off stays off inside
    try:
        with varied_length_attention("cuda"):
            assert not backends.flash_sdp_enabled() and not backends.cudnn_sdp_enabled()
            assert backends.mem_efficient_sdp_enabled()
        assert not backends.flash_sdp_enabled() and backends.cudnn_sdp_enabled()
    finally:
        backends.enable_flash_sdp(before[1])


def test_training_step_holds_the_attention_rule_over_the_backward(monkeypatch, tmp_path):
    """With gradient checkpointing the forward is recomputed inside the backward; if the attention rule covered the
    forward only, the recomputation could pick another SDPA kernel and non-reentrant checkpointing stops with a
    CheckpointError. On this CPU the rule is emulated by a MATH-only context (here the kernel differs from the one
    picked outside it, as cuDNN and memory-efficient attention differ on a GPU); the Trainer step is the real one."""
    import contextlib

    import datasets
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers import ModernBertConfig, ModernBertForTokenClassification

    import feedback_ner.trainer as trainer_module
    from feedback_ner.config import FeedbackTrainingArguments

    entered = []

    @contextlib.contextmanager
    def math_only(device):  # noqa: ANN001
        entered.append(str(device))
        with sdpa_kernel([SDPBackend.MATH]):
            yield

    monkeypatch.setattr(trainer_module, "varied_length_attention", math_only)
    config = ModernBertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=128, num_labels=15, pad_token_id=0,
                              attn_implementation="sdpa")
    torch.manual_seed(0)
    model = ModernBertForTokenClassification(config)
    g = torch.Generator().manual_seed(0)
    rows = [dict(input_ids=torch.randint(1, 100, (n,), generator=g).tolist(), attention_mask=[1] * n,
                 labels=torch.randint(0, 15, (n,), generator=g).tolist()) for n in (20, 24, 30, 32)]

    def collate(features):  # noqa: ANN001
        length = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([f[key] + [value] * (length - len(f[key])) for f in features])

        return {"input_ids": pad("input_ids", 0), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", -100)}

    args = FeedbackTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=2,
                                     use_cpu=True, report_to="none", disable_tqdm=True, eval_strategy="no",
                                     save_strategy="no", load_best_model_at_end=False, gradient_checkpointing=True)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = trainer_module.FeedbackTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                             data_collator=collate)
    trainer.train()
    assert entered, "the training step never entered the attention rule"
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))


class _NoDropout(TrainerCallback):
    """Dropout off, so that one batch of 4 and two accumulated batches of 2 compute the same sums."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001 (upstream signature)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0


@pytest.mark.parametrize("head", ["linear", "lstm"])
def test_gradient_accumulation_logs_and_steps_like_one_batch(head, tmp_path, corpus_dir, tiny_models):
    """Our heads normalise their loss by the Trainer's count of labelled tokens (``num_items_in_batch``), as
    transformers' own heads do. Before, the lstm/gru/mlp head took the mean of each micro-batch while the Trainer
    (seeing ``**kwargs`` in its forward) left the division by the accumulation steps to it: with
    ``gradient_accumulation_steps: 2`` the logged loss and the gradients were twice the true ones (and, under
    DDP, multiplied by the processes)."""
    logged = {}
    for batch, accumulate in ((4, 1), (2, 2)):
        cfg = small_config(corpus_dir, tiny_models("bert"), tmp_path / f"run{batch}", folds=[0], max_essays=20,
                           head=head, rnn_hidden_size=8, per_device_train_batch_size=batch,
                           gradient_accumulation_steps=accumulate, max_steps=1, logging_steps=1, eval_strategy="no",
                           save_strategy="no", load_best_model_at_end=False, train_sampling_strategy="sequential")
        model_args, data_args, train_args = parse_config(None, overrides=cfg)
        table, gt = load_data(data_args)
        tok = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
        trainer = build_trainer(model_args, data_args, train_args, fold_data(table, gt, 0, tok, data_args), tok,
                                PostprocessConfig())
        trainer.add_callback(_NoDropout())
        trainer.train()
        assert isinstance(trainer.model, FeedbackTokenClassifier) == (head == "lstm")
        logs = next(entry for entry in trainer.state.log_history if "loss" in entry)
        logged[accumulate] = (logs["loss"], logs["grad_norm"])
    assert logged[2][0] == pytest.approx(logged[1][0], rel=1e-3)
    assert logged[2][1] == pytest.approx(logged[1][1], rel=1e-3)


def test_token_loss_is_the_mean_over_labelled_tokens_and_zero_without_any():
    """Found by probing: windows holding only the inner sub-tokens of one very long word (a 4,000-character URL at
    max_length 64) have no labelled token; their batches' loss was 0/0 = NaN, so training skipped them as
    "non-finite" and reloaded checkpoints again and again. Such a batch now has loss 0 and no gradient."""
    logits = torch.randn(2, 5, 15, requires_grad=True)
    labels = torch.tensor([[0, 3, -100, 7, -100], [-100, 1, 1, -100, -100]])
    flat, kept = logits.reshape(-1, 15), labels.reshape(-1) != -100
    mean = torch.nn.functional.cross_entropy(flat[kept], labels.reshape(-1)[kept])
    assert torch.allclose(token_loss(logits, labels), mean)
    assert torch.allclose(token_loss(logits, labels, num_items_in_batch=torch.tensor(10)), mean * 5 / 10)
    for count in (None, torch.tensor(0), 0):
        loss = token_loss(logits, torch.full_like(labels, -100), num_items_in_batch=count)
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()
