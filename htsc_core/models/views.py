"""Bounded forwards over many views: the test protocol's S segments x C crops (25 x 10 = 250 per video at the
paper profile) go through a network in chunks of at most ``cfg.views_per_forward`` views, so that the memory of a
scoring or validation pass does not grow with the views of a batch (docs/DESIGN.md section 4, "Memory of a
scoring pass"; issue 37).

Test-mode items hold their frames as uint8 (``data/dataset.py``: 1 byte a value instead of 4 until the device);
:func:`as_float` turns a chunk into the float32 [0, 1] the networks take, with the same arithmetic as
``data.transforms.rgb_to_tensor`` (``float() / 255``), so scores are bit for bit those of float items.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 frames in [0, 255] -> float32 in [0, 1] (``rgb_to_tensor``'s arithmetic); any other tensor as it is."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def _cat(parts: list[Any]) -> Any:
    first = parts[0]
    if torch.is_tensor(first):
        return first if len(parts) == 1 else torch.cat(parts)
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    raise TypeError(f"in_chunks: cannot concatenate outputs of type {type(first).__name__}")


def in_chunks(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, size: int) -> Any:
    """``fn`` over ``x`` (N, ...) in pieces of at most ``size`` rows (``size`` <= 0: one piece), each piece made
    float (:func:`as_float`) only when its turn comes; the outputs (a tensor, or a tuple / list / dict of tensors
    with N rows) concatenated in order. With ``size >= N`` this is exactly ``fn(as_float(x))``."""
    n = x.shape[0]
    if size <= 0 or size >= n:
        return fn(as_float(x))
    return _cat([fn(as_float(x[i:i + size])) for i in range(0, n, size)])
