"""Layer-wise learning-rate decay: the optimizer's parameter groups, each encoder layer ``decay`` times the LR of
the layer above it; the head (and anything above the last layer) gets the full learning rate."""

from __future__ import annotations

import re

from torch import nn

_LAYER = re.compile(r"\.(?:layer|layers|block|blocks)\.(\d+)\.")


def layer_depth(name: str, num_layers: int) -> int:
    """0 for embeddings, i + 1 for encoder layer i, ``num_layers + 1`` for everything else (head, pooler)."""
    match = _LAYER.search(f".{name}")
    if match:
        return int(match.group(1)) + 1
    if "embed" in name:
        return 0
    return num_layers + 1


def layerwise_param_groups(
    model: nn.Module, lr: float, decay: float, weight_decay: float, decay_names: set[str]
) -> list[dict]:
    """Parameter groups (one per depth and weight-decay setting) with ``lr * decay ** (top - depth)``."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    depths = [int(m.group(1)) + 1 for n, _ in named if (m := _LAYER.search(f".{n}"))]
    num_layers = max(depths, default=0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in named:
        depth = layer_depth(name, num_layers)
        decayed = name in decay_names
        key = (depth, decayed)
        if key not in groups:
            groups[key] = {
                "params": [],
                "lr": lr * decay ** (num_layers + 1 - depth),
                "weight_decay": weight_decay if decayed else 0.0,
            }
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]
