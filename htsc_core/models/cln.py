"""Collaborative learning network (CLN): paper section 3.2 (Eq. 7-9, the 8 steps of 3.2.2) and 4.2.2.

Per video, N segments give spatial features F^s = [f_1^s .. f_N^s] and temporal
(hidden-flow) features F^o = [f_1^o .. f_N^o], the fc7 outputs of each stream.
Each stream's segment features are pooled with attention coefficients computed
from the *other* stream's current video feature, so appearance guides the
motion pooling and motion guides the appearance pooling:

    H^o = tanh(W^o F^o + (W_v^s V^s) 1^T)      (k x N)   Eq. 7
    c^o = softmax(w_ho^T H^o)                  (N)       Eq. 8
    V^o = sum_i c_i^o f_i^o                    (d)       Eq. 9
    H^s = tanh(W^s F^s + (W_v^o V^o) 1^T)      symmetric (steps 5-6 of 3.2.2)
    c^s = softmax(w_hs^T H^s)
    V^s = sum_i c_i^s f_i^s

This is the co-attention of TCLSTA (Peng, Zhao and Zhang 2018, "Two-stream
collaborative learning with spatial-temporal attention"), which the paper cites
and whose structure the HTSC equations restate.

Step 7 ("iterate until the loss converges") is read as a fixed number of
alternations ``rounds`` inside the forward pass (docs/DESIGN.md section 2, CLN);
the loss convergence itself is the trainer's outer loop.

Two softmax classifiers, one per stream, on V^s and V^o (section 4.2.2: "N hidden
units in the two softmax layers"), trained with cross-entropy on both heads
(:func:`cln_loss`).

Gradient coverage: with ``rounds >= 1`` every parameter takes part in the
forward pass (round 1 already uses W_v^s on the uniform V^s and W_v^o on the
first V^o), so every parameter gets a gradient from a loss on both heads; with
``rounds = 1`` the temporal head's path does not depend on W^s, W_v^o, w_hs
(they reach only the spatial head), which is why the loss uses both heads.
"""
from __future__ import annotations

import torch
from torch import nn

from htsc_core.models.losses import classification_loss


class CollaborativeLearning(nn.Module):
    """Symmetric spatial/temporal co-attention pooling with one classifier per stream.

    Args:
        feature_dim: d, the fc7 width of both streams.
        hidden: k, the number of rows of H^s / H^o (Eq. 7); ``cfg.cln_hidden``.
        num_classes: M, classes of each softmax head.
        rounds: alternations of the (c^o, c^s) updates (3.2.2 step 7); ``cfg.cln_rounds``; >= 1.
        dropout: dropout on V^s, V^o before the classifiers (not in the paper; 0 disables).
    """

    def __init__(self, feature_dim: int, hidden: int, num_classes: int, rounds: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("feature_dim", feature_dim), ("hidden", hidden), ("num_classes", num_classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"cln.py: {name}={value!r} must be a positive int")
        if not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"cln.py: rounds={rounds!r} must be an int >= 1 (3.2.2 step 7)")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"cln.py: dropout={dropout!r} must be in [0, 1)")
        self.feature_dim = feature_dim
        self.hidden = hidden
        self.num_classes = num_classes
        self.rounds = rounds
        # Eq. 7 has no bias terms; a bias in w_h would cancel in the softmax of Eq. 8 anyway.
        self.W_o = nn.Linear(feature_dim, hidden, bias=False)  # W^o   (k x d), Eq. 7
        self.W_vs = nn.Linear(feature_dim, hidden, bias=False)  # W_v^s (k x d), Eq. 7
        self.w_ho = nn.Linear(hidden, 1, bias=False)  # w_ho  (k), Eq. 8
        self.W_s = nn.Linear(feature_dim, hidden, bias=False)  # W^s   (k x d), symmetric Eq. 7
        self.W_vo = nn.Linear(feature_dim, hidden, bias=False)  # W_v^o (k x d), symmetric Eq. 7
        self.w_hs = nn.Linear(hidden, 1, bias=False)  # w_hs  (k), symmetric Eq. 8
        self.dropout = nn.Dropout(dropout)
        # Section 4.2.2: one softmax layer per stream on the pooled video features.
        self.fc_s = nn.Linear(feature_dim, num_classes)
        self.fc_o = nn.Linear(feature_dim, num_classes)

    @staticmethod
    def _attend(feats: torch.Tensor, guide: torch.Tensor, W_f: nn.Linear, W_v: nn.Linear,
                w_h: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """One attention update (Eq. 7-9): pool ``feats`` (B, N, d) guided by ``guide`` (B, d)."""
        # Eq. 7, stored transposed: H^T = tanh(F^T W^T + 1 (W_v V)^T)          # (B, N, k)
        h = torch.tanh(W_f(feats) + W_v(guide).unsqueeze(1))
        # Eq. 8: c = softmax over the N segments of w_h^T H                    # (B, N)
        c = torch.softmax(w_h(h).squeeze(-1), dim=1)
        # Eq. 9: V = sum_i c_i f_i                                             # (B, d)
        v = torch.einsum("bn,bnd->bd", c, feats)
        return c, v

    def forward(self, fs: torch.Tensor, fo: torch.Tensor) -> dict[str, torch.Tensor]:
        """fs: spatial fc7 (B, N, d); fo: temporal fc7 (B, N, d).

        Returns dict(logits_s (B, M), logits_o (B, M), v_s (B, d), v_o (B, d), c_s (B, N), c_o (B, N)).
        """
        if fs.dim() != 3 or fo.dim() != 3:
            raise ValueError(f"cln.py: expected fs, fo of shape (B, N, d); got {tuple(fs.shape)} and {tuple(fo.shape)}")
        if fs.shape != fo.shape:
            raise ValueError(f"cln.py: spatial and temporal features differ in shape: "
                             f"fs {tuple(fs.shape)} vs fo {tuple(fo.shape)} (need the same B, N, d)")
        if fs.shape[-1] != self.feature_dim:
            raise ValueError(f"cln.py: feature dim {fs.shape[-1]} != feature_dim={self.feature_dim}")
        if fs.shape[1] < 1:
            raise ValueError("cln.py: need at least one segment (N >= 1)")
        # Steps 1-3 of 3.2.2: uniform c^s, so V^s starts as the mean of F^s.
        n = fs.shape[1]
        c_s = fs.new_full(fs.shape[:2], 1.0 / n)  # (B, N)
        v_s = fs.mean(dim=1)  # (B, d)
        c_o = c_s
        v_o = fo.mean(dim=1)
        for _ in range(self.rounds):  # step 7: a fixed number of alternations (docs/DESIGN.md section 2)
            # Steps 4-5: spatial video feature guides the temporal coefficients (Eq. 7-9).
            c_o, v_o = self._attend(fo, v_s, self.W_o, self.W_vs, self.w_ho)
            # Step 6: temporal video feature guides the spatial coefficients (symmetric Eq. 7-9).
            c_s, v_s = self._attend(fs, v_o, self.W_s, self.W_vo, self.w_hs)
        # Step 8: the optimised features V^s, V^o, then one softmax classifier per stream (4.2.2).
        logits_s = self.fc_s(self.dropout(v_s))  # (B, M)
        logits_o = self.fc_o(self.dropout(v_o))  # (B, M)
        return dict(logits_s=logits_s, logits_o=logits_o, v_s=v_s, v_o=v_o, c_s=c_s, c_o=c_o)


def cln_loss(out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on both heads (section 4.2.2): CE(logits_s) + CE(logits_o).

    ``target`` is either class indices (B,) (integer dtype) or multi-hot (B, M) floats
    (multi-label THUMOS14), for which BCE-with-logits replaces the softmax cross-entropy
    (the one rule of :func:`htsc_core.models.losses.classification_loss`; docs/DESIGN.md section 4).
    """
    return classification_loss(out["logits_s"], target) + classification_loss(out["logits_o"], target)
