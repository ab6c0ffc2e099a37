"""EMA of the weights (15th place): a ``TrainerCallback`` over ``torch.optim.swa_utils.AveragedModel``.

The average is updated after every optimizer step. Evaluation, best-epoch selection and the saved checkpoints use
the averaged weights: they are swapped into the model when the Trainer is about to evaluate or save and swapped
back before the next training step. At the end of training the model keeps the averaged weights (the best
checkpoint's, when ``load_best_model_at_end`` reloaded one). A resumed run restarts the average from the
checkpoint's (averaged) weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from transformers import TrainerCallback


class EMACallback(TrainerCallback):
    """Keeps an exponential moving average of the model's weights (``decay`` per optimizer step)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.averaged: AveragedModel | None = None
        self._live: list[torch.Tensor] | None = None  # the training weights while the average is swapped in

    def _tensors(self, model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001 (upstream signature)
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        self._live = None

    def on_step_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        self.swap_out(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        self.averaged.update_parameters(model)
        if control.should_evaluate or control.should_save:
            self.swap_in(model)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if control.should_evaluate or control.should_save:
            self.swap_in(model)

    def on_save(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        self.swap_out(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
        if args.load_best_model_at_end and state.best_model_checkpoint:
            self._live = None  # the model holds the best checkpoint, whose weights are already averaged
            return
        self._live = None
        self._copy(self._tensors(self.averaged.module), self._tensors(model))

    def swap_in(self, model: nn.Module) -> None:
        """Put the averaged weights into ``model``, keeping the training weights aside."""
        if self._live is not None or self.averaged is None:
            return
        self._live = [t.detach().clone() for t in self._tensors(model)]
        self._copy(self._tensors(self.averaged.module), self._tensors(model))

    def swap_out(self, model: nn.Module) -> None:
        """Put the training weights back."""
        if self._live is None:
            return
        self._copy(self._live, self._tensors(model))
        self._live = None

    @staticmethod
    def _copy(src: list[torch.Tensor], dst: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for s, d in zip(src, dst, strict=True):
                d.copy_(s)
