"""Training recipes (issue 14): AWP, FGM, EMA, token masking, cutmix, layer-wise LR decay, label smoothing, mlp head.

Each recipe: off by default; on, it changes the trained weights at the same seed; its checkpoint reloads with the
plain Auto classes. Plus the recipe-specific guarantees (masking never touches special tokens or labels, EMA's
evaluated and saved weights are the averaged ones, the non-finite-loss guard still works with AWP/FGM).
"""

from __future__ import annotations

import logging
from dataclasses import fields

import pytest
import torch
from conftest import assert_predict_reproduces_oof, small_config
from transformers import AutoModelForTokenClassification, AutoTokenizer, TrainerCallback
from transformers.trainer_pt_utils import LabelSmoother

from feedback_ner.config import FeedbackTrainingArguments, ModelArguments, parse_config
from feedback_ner.kfold import build_trainer, fold_data, load_data
from feedback_ner.modeling import FeedbackTokenClassifier
from feedback_ner.postprocess import PostprocessConfig
from feedback_ner.recipes import RECIPE_FIELDS, Recipes
from feedback_ner.recipes.augment import content_mask, cutmix, mask_tokens
from feedback_ner.recipes.llrd import layerwise_param_groups

STEPS = dict(max_steps=3, eval_strategy="no", save_strategy="no", load_best_model_at_end=False, learning_rate=1e-3)

RECIPES = {
    "awp": dict(awp_lr=0.5, awp_eps=0.5, awp_start_epoch=0),
    "fgm": dict(fgm_epsilon=1.0),
    "ema": dict(ema_decay=0.5),
    "mask": dict(mask_prob=0.3),
    "cutmix": dict(cutmix_prob=1.0, cutmix_ratio=0.5),
    "llrd": dict(layerwise_lr_decay=0.5),
    "label_smoothing": dict(label_smoothing_factor=0.2),
    "mlp_head": dict(head="mlp", head_hidden_size=16, head_activation="tanh"),
}


@pytest.fixture(scope="module")
def fold(tmp_path_factory, corpus_dir, tiny_models):
    """Fold 0's windows for the tiny BERT (made once)."""
    out = tmp_path_factory.mktemp("recipes")
    cfg = small_config(corpus_dir, tiny_models("bert"), out / "run", folds=[0], max_essays=20)
    model_args, data_args, train_args = parse_config(None, overrides=cfg)
    table, gt = load_data(data_args)
    tok = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    return cfg, tok, fold_data(table, gt, 0, tok, data_args)


def train(fold, tmp_path, callbacks=(), **extra):
    """A FeedbackTrainer trained a few steps with ``extra`` config values; returns the trainer."""
    cfg, tok, data = fold
    model_args, data_args, train_args = parse_config(
        None, overrides={**cfg, **STEPS, "output_dir": str(tmp_path / "out"), **extra}
    )
    trainer = build_trainer(model_args, data_args, train_args, data, tok, PostprocessConfig())
    for cb in callbacks:
        trainer.add_callback(cb)
    trainer.train()
    return trainer


def weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.fixture(scope="module")
def plain(fold, tmp_path_factory):
    return weights(train(fold, tmp_path_factory.mktemp("plain")))


def test_recipes_are_off_by_default():
    """Issue 14: every recipe field defaults to off, and a Recipes of the defaults changes nothing."""
    defaults = {f.name: f.default for f in fields(FeedbackTrainingArguments)}
    assert all(name in defaults for name in RECIPE_FIELDS)
    args = FeedbackTrainingArguments(output_dir="unused", use_cpu=True)
    recipes = Recipes(args, None)
    assert not recipes.adversarial and recipes.callbacks() == []
    assert recipes.param_groups(torch.nn.Linear(2, 2), set()) is None
    batch = {"input_ids": torch.arange(6).view(2, 3)}
    assert recipes.augment(batch) is batch
    assert args.label_smoothing_factor == 0.0 and ModelArguments().head == "linear"


def test_same_seed_gives_the_same_weights(fold, tmp_path, plain):
    again = weights(train(fold, tmp_path))
    assert all(torch.equal(plain[k], again[k]) for k in plain)


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_changes_weights_and_its_checkpoint_reloads(fold, tmp_path, plain, name):
    """Issue 14: on, the recipe changes the trained weights at the same seed; the saved model reloads with Auto."""
    trainer = train(fold, tmp_path, **RECIPES[name])
    trained = weights(trainer)
    shared = [k for k in plain if k in trained and plain[k].shape == trained[k].shape]
    assert name == "mlp_head" or set(shared) == set(plain)
    assert any(not torch.equal(plain[k], trained[k]) for k in shared), f"{name} changed nothing"
    trainer.save_model(str(tmp_path / "model"))
    reloaded = AutoModelForTokenClassification.from_pretrained(tmp_path / "model")
    assert isinstance(reloaded, FeedbackTokenClassifier) == (name == "mlp_head")
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, trained[key].cpu()), key


def test_mlp_head_has_its_activation_and_size(fold, tmp_path):
    trainer = train(fold, tmp_path, **RECIPES["mlp_head"])
    mlp = trainer.model.mlp
    assert mlp[0].out_features == 16 and isinstance(mlp[1], torch.nn.Tanh)
    assert trainer.model.classifier.in_features == 16


def test_label_smoothing_reaches_our_heads_loss(fold, tmp_path):
    """Issue 14: label_smoothing_factor changes the loss of our own head (the Trainer smooths its logits)."""
    cfg, tok, data = fold
    batch = trainer_batch = None
    losses = {}
    for factor in (0.0, 0.3):
        model_args, data_args, train_args = parse_config(
            None, overrides={**cfg, **STEPS, "output_dir": str(tmp_path), "head": "lstm", "rnn_hidden_size": 8,
                             "label_smoothing_factor": factor}
        )
        trainer = build_trainer(model_args, data_args, train_args, data, tok, PostprocessConfig())
        trainer.model = trainer.call_model_init()
        trainer.model.eval()
        if batch is None:
            batch = next(iter(trainer.get_train_dataloader()))
            trainer_batch = trainer
        with torch.no_grad():
            losses[factor] = float(trainer.compute_loss(trainer.model, dict(batch)))
    assert isinstance(trainer_batch.model, FeedbackTokenClassifier)
    with torch.no_grad():
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = LabelSmoother(epsilon=0.3)({"logits": logits}, batch["labels"])
    assert losses[0.3] == pytest.approx(float(expected), rel=1e-5)
    assert losses[0.3] != pytest.approx(losses[0.0], rel=1e-3)


def test_masking_never_touches_special_tokens_padding_or_labels():
    """Issue 14: token masking changes only text tokens of the inputs; labels and everything else unchanged."""
    specials = [0, 101, 102]
    ids = torch.tensor([[101, 5, 6, 7, 8, 102, 0, 0], [101, 9, 10, 11, 12, 13, 14, 102]])
    attention = (ids != 0).long()
    labels = torch.tensor([[-100, 1, 2, 3, 4, -100, -100, -100], [-100, 5, 6, 7, 8, 9, 10, -100]])
    batch = {"input_ids": ids, "attention_mask": attention, "labels": labels}
    out = mask_tokens(batch, 1.0, 103, specials)
    text = content_mask(ids, attention, specials)
    assert (out["input_ids"][text] == 103).all()
    assert torch.equal(out["input_ids"][~text], ids[~text])
    assert out["labels"] is labels and out["attention_mask"] is attention
    assert torch.equal(batch["input_ids"], ids), "the caller's batch is not modified"
    few = mask_tokens(batch, 0.5, 103, specials, generator=torch.Generator().manual_seed(0))
    assert 0 < int((few["input_ids"] == 103).sum()) < int(text.sum())


def test_cutmix_moves_tokens_with_their_labels_and_keeps_special_tokens():
    specials = [0, 101, 102]
    ids = torch.tensor([[101, 5, 6, 7, 8, 102, 0, 0], [101, 20, 21, 22, 23, 24, 25, 102]])
    attention = (ids != 0).long()
    labels = ids.clone() + 1000  # label = token + 1000: pairs must stay together
    batch = {"input_ids": ids, "attention_mask": attention, "labels": labels}
    out = cutmix(batch, 1.0, 0.5, specials, generator=torch.Generator().manual_seed(1))
    text = content_mask(ids, attention, specials)
    assert torch.equal(out["input_ids"][~text], ids[~text]) and torch.equal(out["labels"][~text], labels[~text])
    assert torch.equal(out["labels"], out["input_ids"] + 1000)
    assert not torch.equal(out["input_ids"], ids)
    assert torch.equal(batch["input_ids"], ids), "the caller's batch is not modified"


def test_the_loss_is_divided_by_the_labelled_tokens_of_the_augmented_batch(fold, tmp_path):
    """Noted in review: cutmix ran in training_step, after the Trainer had counted the labelled tokens (which divide
    the summed loss) of the batch before cutmix moved labels with their tokens, so each step's loss was scaled by
    the count of another batch. Training batches are now augmented before they are counted."""
    cfg, tok, data = fold
    model_args, data_args, train_args = parse_config(
        None, overrides={**cfg, **STEPS, "output_dir": str(tmp_path / "out"), **RECIPES["cutmix"]}
    )
    trainer = build_trainer(model_args, data_args, train_args, data, tok, PostprocessConfig())
    batch = next(iter(trainer.get_train_dataloader()))
    torch.manual_seed(0)
    [got], count = trainer.get_batch_samples(iter([batch]), 1, trainer.args.device)
    assert not torch.equal(got["input_ids"], batch["input_ids"])  # augmented before counting
    assert int(count) == int((got["labels"] != -100).sum()) != int((batch["labels"] != -100).sum())


def test_layerwise_lr_decay_groups():
    from transformers import BertConfig, BertForTokenClassification

    model = BertForTokenClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
                                                  num_attention_heads=2, intermediate_size=32, num_labels=3))
    groups = layerwise_param_groups(model, 1.0, 0.5, 0.01, {n for n, _ in model.named_parameters() if "bias" not in n})
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["classifier.weight"])] == 1.0
    assert lr_of[id(named["bert.encoder.layer.2.attention.self.query.weight"])] == 0.5
    assert lr_of[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == 0.125
    assert lr_of[id(named["bert.embeddings.word_embeddings.weight"])] == 0.0625
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_layerwise_lr_decay_reaches_the_optimizer(fold, tmp_path):
    trainer = train(fold, tmp_path, layerwise_lr_decay=0.5)
    initial = sorted({g["initial_lr"] for g in trainer.optimizer.param_groups})
    assert initial[-1] == pytest.approx(1e-3) and initial[0] < 1e-3 and len(initial) >= 3


class _Watch(TrainerCallback):
    """Records, at each evaluation and save, whether the model holds the EMA's averaged weights."""

    def __init__(self, ema):
        self.ema, self.seen = ema, []

    def _same(self, model):
        return all(torch.equal(a, b) for a, b in zip(model.parameters(), self.ema.averaged.module.parameters()))

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self.seen.append(("evaluate", self._same(model)))

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step:
            self.seen.append(("train", self._same(model)))


def test_ema_evaluates_and_saves_the_averaged_weights(fold, tmp_path):
    """Issue 14: evaluation and the saved checkpoint use the EMA weights; training continues on the live ones."""
    from feedback_ner.recipes.ema import EMACallback

    cfg, tok, data = fold
    over = {**cfg, "output_dir": str(tmp_path / "out"), "ema_decay": 0.5, "num_train_epochs": 2, "learning_rate": 1e-3}
    model_args, data_args, train_args = parse_config(None, overrides=over)
    trainer = build_trainer(model_args, data_args, train_args, data, tok, PostprocessConfig())
    ema = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, EMACallback))
    watch = _Watch(ema)
    trainer.add_callback(watch)
    trainer.train()
    assert [s for kind, s in watch.seen if kind == "evaluate"] == [True, True]
    assert not all(s for kind, s in watch.seen if kind == "train"), "training steps run on the live weights"
    best = AutoModelForTokenClassification.from_pretrained(trainer.state.best_model_checkpoint)
    for key, value in best.state_dict().items():  # the reloaded best epoch is an averaged checkpoint
        assert torch.equal(value, trainer.model.state_dict()[key].cpu()), key


def test_ema_without_best_model_keeps_the_average(fold, tmp_path):
    from feedback_ner.recipes.ema import EMACallback

    trainer = train(fold, tmp_path, ema_decay=0.5)
    ema = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, EMACallback))
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), ema.averaged.module.parameters()))


def test_nonfinite_guard_works_with_awp_and_fgm(fold, tmp_path, caplog):
    """Issue 14: a NaN in an adversarial pass skips the step like a NaN in the ordinary one; weights stay finite."""
    calls = {"n": 0}

    def poison(module, inputs, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] in (2, 6):  # step 1's FGM pass, step 3's ordinary pass
                return output * float("nan")
        return output

    class InjectNaN(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            model.classifier.register_forward_hook(poison)

    with caplog.at_level(logging.WARNING, logger="feedback_ner"):
        trainer = train(fold, tmp_path, callbacks=[InjectNaN()], awp_lr=0.1, awp_start_epoch=0, fgm_epsilon=0.5,
                        max_steps=4)
    # step 1: ordinary + FGM (NaN gradients: AWP has nothing to follow), steps 2 and 4: ordinary + FGM + AWP,
    # step 3: its NaN ordinary loss skips the adversarial passes
    assert calls["n"] == 2 + 3 + 1 + 3
    assert trainer.nonfinite_steps == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.parametrize(
    "field,value",
    [("mask_prob", 1.5), ("cutmix_prob", -0.1), ("cutmix_ratio", 2.0), ("awp_lr", -1.0), ("fgm_epsilon", -0.1),
     ("ema_decay", 1.0), ("layerwise_lr_decay", 0.0), ("head_activation", "swish"), ("head_hidden_size", 0)],
)
def test_bad_recipe_values_name_the_field(field, value, tmp_path):
    with pytest.raises(ValueError, match=field):
        parse_config(None, overrides={"output_dir": str(tmp_path), "use_cpu": True, field: value})


def test_recipes_sweep_space_is_valid():
    """Issue 14: every recipe is sweepable; sweeps/recipes.yaml draws only accepted values."""
    from pathlib import Path

    from feedback_ner.search import load_space

    root = Path(__file__).resolve().parents[1]
    space = load_space(root / "sweeps" / "recipes.yaml")
    space.check(parse_config(root / "configs" / "demo.yaml", overrides={**space.fixed, "use_cpu": True}))
    assert {"awp_lr", "fgm_epsilon", "ema_decay", "mask_prob", "cutmix_prob", "layerwise_lr_decay"} <= set(space.params)


def test_checkpoint_trained_with_every_recipe_reproduces_its_oof_f1_in_predict(tmp_path, corpus_dir, tiny_models):
    """Issue 14: a fold trained with all recipes on (EMA weights saved) is predicted exactly as it was evaluated."""
    from feedback_ner.kfold import run

    keep_all = PostprocessConfig.zeros().save(tmp_path / "keep_all.json")
    every = {k: v for name in RECIPES for k, v in RECIPES[name].items()}
    cfg = small_config(corpus_dir, tiny_models("bert"), tmp_path / "run", folds=[0], max_essays=20,
                       postprocess=str(keep_all), **every)
    run(*parse_config(None, overrides=cfg))
    assert_predict_reproduces_oof(tmp_path / "run" / "fold_0", corpus_dir, tmp_path)
