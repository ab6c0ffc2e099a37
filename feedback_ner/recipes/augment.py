"""Training-batch augmentation: token masking and cutmix between windows (3rd place of the competition).

Both take a collated training batch and return a new one; evaluation batches never pass through here. Special
tokens and padding are never touched; masking leaves the labels unchanged, cutmix moves labels with their tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

Batch = dict[str, Any]


def content_mask(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, special_ids: Sequence[int]
) -> torch.Tensor:
    """True where a token is real text: attended to and not a special token (CLS, SEP, PAD, ...)."""
    keep = ~torch.isin(input_ids, torch.as_tensor(list(special_ids), device=input_ids.device, dtype=input_ids.dtype))
    if attention_mask is not None:
        keep &= attention_mask.bool()
    return keep


def mask_tokens(
    batch: Batch, prob: float, mask_id: int, special_ids: Sequence[int], generator: torch.Generator | None = None
) -> Batch:
    """Replace each text token by ``mask_id`` with probability ``prob``; labels and everything else unchanged."""
    ids = batch["input_ids"]
    draw = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    chosen = (draw < prob) & content_mask(ids, batch.get("attention_mask"), special_ids)
    return {**batch, "input_ids": ids.masked_fill(chosen, mask_id)}


def cutmix(
    batch: Batch, prob: float, ratio: float, special_ids: Sequence[int], generator: torch.Generator | None = None
) -> Batch:
    """With probability ``prob`` per window, paste a run of ``ratio`` of its text tokens taken from another window
    of the batch (tokens and their labels together) over a run of the same length at a random place.

    Only text tokens are cut and overwritten: special tokens and padding stay where they are.
    """
    ids = batch["input_ids"]
    n = ids.shape[0]
    if n < 2:
        return batch
    out = {k: (v.clone() if isinstance(v, torch.Tensor) and v.shape[:1] == (n,) and v.dim() == 2 else v)
           for k, v in batch.items()}
    text = content_mask(ids, batch.get("attention_mask"), special_ids)
    partner = torch.randperm(n, generator=generator)
    apply = torch.rand(n, generator=generator) < prob
    cols = [k for k in ("input_ids", "labels", "token_type_ids") if k in batch]
    for i in range(n):
        j = int(partner[i])
        if not apply[i] or j == i:
            continue
        dst = text[i].nonzero().flatten()
        src = text[j].nonzero().flatten()
        length = int(ratio * min(len(dst), len(src)))
        if length < 1:
            continue
        d0 = int(torch.randint(0, len(dst) - length + 1, (1,), generator=generator))
        s0 = int(torch.randint(0, len(src) - length + 1, (1,), generator=generator))
        d_idx, s_idx = dst[d0 : d0 + length], src[s0 : s0 + length]
        for key in cols:
            out[key][i, d_idx] = batch[key][j, s_idx]
    return out
