"""The classification loss of every stage (spatial, temporal, TV-L1 temporal, both CLN heads).

One rule (docs/DESIGN.md section 4): class-index targets (B,) -> softmax cross-entropy,
as the paper trains every stream and the CLN (sec. 4.2); multi-hot targets (B, M)
(multi-label THUMOS14 videos) -> binary cross-entropy with logits, which the paper does
not describe (it is single-label throughout).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits`` (B, M) against class indices (B,) or multi-hot (B, M); computed in float32."""
    if logits.dim() != 2:
        raise ValueError(f"losses.py: logits must be (B, M); got {tuple(logits.shape)}")
    if target.dim() == 1:
        if target.dtype.is_floating_point:
            raise ValueError("losses.py: class-index targets (B,) must be an integer tensor")
        if target.shape[0] != logits.shape[0]:
            raise ValueError(f"losses.py: target batch {target.shape[0]} != logits batch {logits.shape[0]}")
        return F.cross_entropy(logits.float(), target)
    if target.dim() == 2:
        if target.shape != logits.shape:
            raise ValueError(f"losses.py: multi-hot target {tuple(target.shape)} != logits {tuple(logits.shape)}")
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())
    raise ValueError(f"losses.py: target must be (B,) class indices or (B, M) multi-hot; got {tuple(target.shape)}")
