"""Training recipes of the competition's top solutions, each off by default and switched on by one config field.

``Recipes`` is what ``FeedbackTrainer`` holds: it reads the fields of ``FeedbackTrainingArguments`` and offers
``augment`` (token masking, cutmix; training batches only), ``adversarial_step`` (AWP, FGM, after the ordinary
backward), ``callbacks`` (EMA) and ``param_groups`` (layer-wise LR decay). Each recipe lives in its own module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import TrainerCallback

from feedback_ner.recipes.adversarial import AWP, FGM, attack
from feedback_ner.recipes.augment import cutmix, mask_tokens
from feedback_ner.recipes.ema import EMACallback
from feedback_ner.recipes.llrd import layerwise_param_groups

__all__ = ["Recipes", "RECIPE_FIELDS"]

# The config fields that switch recipes on (all off by default); see FeedbackTrainingArguments for their help.
RECIPE_FIELDS = (
    "awp_lr", "awp_eps", "awp_start_epoch", "fgm_epsilon", "ema_decay", "mask_prob", "cutmix_prob", "cutmix_ratio",
    "layerwise_lr_decay",
)


class Recipes:
    """The recipes switched on in ``args`` (a ``FeedbackTrainingArguments``); ``tokenizer`` gives the special and
    mask tokens."""

    def __init__(self, args: Any, tokenizer: Any = None) -> None:
        self.args = args
        self.mask_prob = float(getattr(args, "mask_prob", 0.0) or 0.0)
        self.cutmix_prob = float(getattr(args, "cutmix_prob", 0.0) or 0.0)
        self.cutmix_ratio = float(getattr(args, "cutmix_ratio", 0.25))
        self.awp = AWP(args.awp_lr, args.awp_eps) if getattr(args, "awp_lr", 0.0) else None
        self.awp_start_epoch = float(getattr(args, "awp_start_epoch", 0.0) or 0.0)
        self.fgm = FGM(args.fgm_epsilon) if getattr(args, "fgm_epsilon", 0.0) else None
        self.ema_decay = getattr(args, "ema_decay", None)
        self.lr_decay = getattr(args, "layerwise_lr_decay", None)
        self.special_ids = sorted(set(getattr(tokenizer, "all_special_ids", None) or []))
        mask_id = getattr(tokenizer, "mask_token_id", None)
        self.mask_id = mask_id if mask_id is not None else getattr(tokenizer, "unk_token_id", None)
        if self.mask_prob and self.mask_id is None:
            raise ValueError("mask_prob > 0 needs a tokenizer with a mask (or unk) token; this one has neither.")

    @property
    def adversarial(self) -> bool:
        return self.awp is not None or self.fgm is not None

    def augment(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A training batch with token masking and cutmix applied (unchanged when both are off)."""
        if self.cutmix_prob:
            batch = cutmix(batch, self.cutmix_prob, self.cutmix_ratio, self.special_ids)
        if self.mask_prob:
            batch = mask_tokens(batch, self.mask_prob, self.mask_id, self.special_ids)
        return batch

    def adversarial_step(self, trainer: Any, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None):
        """After the ordinary backward of ``trainer.training_step``: the adversarial passes (forward + backward with
        perturbed weights, gradients added). Returns the largest adversarial loss (NaN if one was not finite)."""
        scaled = (trainer.model_accepts_loss_kwargs and num_items_in_batch is not None) or (
            trainer.compute_loss_func is not None
        )

        def loss_fn() -> torch.Tensor:
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
            if trainer.args.n_gpu > 1:
                loss = loss.mean()
            if not scaled:
                loss = loss / trainer.current_gradient_accumulation_steps
            trainer.accelerator.backward(loss)
            return loss.detach()

        return self.attacks(model, float(trainer.state.epoch or 0.0), loss_fn)

    def attacks(self, model: nn.Module, epoch: float, loss_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run FGM then AWP (when on; AWP from ``awp_start_epoch``), each calling ``loss_fn`` (forward + backward
        with the perturbed weights). Returns the largest adversarial loss, NaN-carrying if one was not finite."""
        losses = []
        if self.fgm is not None:
            losses.append(attack(model, self.fgm, loss_fn))
        if self.awp is not None and epoch >= self.awp_start_epoch:
            losses.append(attack(model, self.awp, loss_fn))
        losses = [x for x in losses if x is not None]
        if not losses:
            return torch.tensor(0.0)
        return torch.stack([x.detach().float().reshape(()) for x in losses]).max()

    def callbacks(self) -> list[TrainerCallback]:
        """The callbacks of the recipes that are on (EMA)."""
        return [EMACallback(self.ema_decay)] if self.ema_decay else []

    def create_optimizer(self, trainer: Any, model: nn.Module | None = None) -> None:
        """Give ``trainer`` its optimizer over layer-wise LR-decay groups (nothing when off or already made)."""
        model = trainer.model if model is None else model
        if trainer.optimizer is not None or not self.lr_decay:
            return
        groups = self.param_groups(model, set(trainer.get_decay_parameter_names(model)))
        cls, kwargs = trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
        kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
        trainer.optimizer = cls(groups, **kwargs)

    def param_groups(self, model: nn.Module, decay_names: set[str]) -> list[dict] | None:
        """Layer-wise LR-decay parameter groups, or None when it is off (the Trainer's own groups apply)."""
        if not self.lr_decay:
            return None
        return layerwise_param_groups(
            model, self.args.learning_rate, self.lr_decay, self.args.weight_decay, decay_names
        )
