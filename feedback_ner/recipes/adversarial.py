"""Adversarial training recipes: AWP (adversarial weight perturbation) and FGM (fast gradient method on embeddings).

Both run after the ordinary backward pass of a training step: perturb the weights along their gradients, compute
the loss again, add its gradients, and restore the weights before the optimizer steps. ``Adversary.attack`` is
called from ``FeedbackTrainer.training_step``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

_EPS = 1e-6

LossFn = Callable[[], torch.Tensor]


class AWP:
    """Adversarial weight perturbation of every weight matrix (1st place of the competition).

    Each matrix ``W`` moves by ``awp_lr * grad / |grad| * |W|``, clipped to ``W ± awp_eps * |W|`` element-wise.
    """

    def __init__(self, lr: float, eps: float) -> None:
        self.lr = lr
        self.eps = eps

    def perturb(self, model: nn.Module) -> dict[str, torch.Tensor]:
        backup: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not p.requires_grad or p.grad is None or p.dim() < 2:
                    continue
                grad_norm, weight_norm = p.grad.norm(), p.norm()
                if grad_norm == 0 or not torch.isfinite(grad_norm):
                    continue
                backup[name] = p.detach().clone()
                bound = self.eps * p.detach().abs()
                p.add_(self.lr * p.grad / (grad_norm + _EPS) * (weight_norm + _EPS))
                p.copy_(torch.minimum(torch.maximum(p, backup[name] - bound), backup[name] + bound))
        return backup


class FGM:
    """Fast gradient method on the word embeddings: move them by ``epsilon * grad / |grad|`` (15th place)."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    def perturb(self, model: nn.Module) -> dict[str, torch.Tensor]:
        weight = model.get_input_embeddings().weight
        backup: dict[str, torch.Tensor] = {}
        if weight.grad is None:
            return backup
        with torch.no_grad():
            norm = weight.grad.norm()
            if norm != 0 and torch.isfinite(norm):
                backup["embeddings"] = weight.detach().clone()
                weight.add_(self.epsilon * weight.grad / norm)
        return backup

    @staticmethod
    def params(model: nn.Module) -> dict[str, nn.Parameter]:
        return {"embeddings": model.get_input_embeddings().weight}


def restore(model: nn.Module, backup: dict[str, torch.Tensor], fgm: bool = False) -> None:
    """Put the weights saved by ``perturb`` back."""
    params = FGM.params(model) if fgm else dict(model.named_parameters())
    with torch.no_grad():
        for name, value in backup.items():
            params[name].copy_(value)


def attack(model: nn.Module, method: AWP | FGM, loss_fn: LossFn) -> torch.Tensor | None:
    """Perturb ``model``, back-propagate ``loss_fn()`` (gradients add to the ordinary ones), restore the weights.

    Returns the adversarial loss (detached), or None when nothing was perturbed (no gradients yet).
    """
    unwrapped = getattr(model, "module", model)
    backup = method.perturb(unwrapped)
    if not backup:
        return None
    try:
        loss = loss_fn()
    finally:
        restore(unwrapped, backup, fgm=isinstance(method, FGM))
    return loss
