"""Tests for the collaborative learning network (paper section 3.2, Eq. 7-9)."""
from __future__ import annotations

import pytest
import torch

from htsc_core.models.cln import CollaborativeLearning, cln_loss

B, N, D, K, M = 3, 5, 12, 8, 4


def _inputs(seed: int = 0, n: int = N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, n, D, generator=g), torch.randn(B, n, D, generator=g)


def _model(rounds: int = 2, seed: int = 0) -> CollaborativeLearning:
    torch.manual_seed(seed)
    return CollaborativeLearning(D, K, M, rounds=rounds).eval()


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_shapes_and_coefficients_on_simplex(rounds):
    out = _model(rounds)(*_inputs())
    assert out["logits_s"].shape == (B, M) and out["logits_o"].shape == (B, M)
    assert out["v_s"].shape == (B, D) and out["v_o"].shape == (B, D)
    for key in ("c_s", "c_o"):
        c = out[key]
        assert c.shape == (B, N)
        assert (c > 0).all()
        torch.testing.assert_close(c.sum(dim=1), torch.ones(B))
    # coefficients are not trivially uniform once attention runs
    assert not torch.allclose(out["c_o"], torch.full((B, N), 1.0 / N))


def test_matches_hand_written_equations():
    """Independent re-implementation of Eq. 7-9 with explicit (k x N) matrices, per video."""
    model = _model(rounds=2)
    fs, fo = _inputs(1)
    out = model(fs, fo)
    Wo, Wvs, who = model.W_o.weight, model.W_vs.weight, model.w_ho.weight[0]
    Ws, Wvo, whs = model.W_s.weight, model.W_vo.weight, model.w_hs.weight[0]
    for b in range(B):
        Fs, Fo = fs[b].T, fo[b].T  # (d, N) as in the paper
        Vs = Fs.mean(dim=1)
        for _ in range(2):
            Ho = torch.tanh(Wo @ Fo + (Wvs @ Vs)[:, None] @ torch.ones(1, N))  # Eq. 7 (k x N)
            co = torch.softmax(who @ Ho, dim=0)  # Eq. 8
            Vo = Fo @ co  # Eq. 9
            Hs = torch.tanh(Ws @ Fs + (Wvo @ Vo)[:, None] @ torch.ones(1, N))
            cs = torch.softmax(whs @ Hs, dim=0)
            Vs = Fs @ cs
        torch.testing.assert_close(out["c_o"][b], co)
        torch.testing.assert_close(out["c_s"][b], cs)
        torch.testing.assert_close(out["v_o"][b], Vo)
        torch.testing.assert_close(out["v_s"][b], Vs)
        torch.testing.assert_close(out["logits_s"][b], model.fc_s.weight @ Vs + model.fc_s.bias)


def test_permuting_segments_permutes_coefficients_only():
    model = _model()
    fs, fo = _inputs(2)
    perm = torch.tensor([3, 0, 4, 1, 2])
    a = model(fs, fo)
    b = model(fs[:, perm], fo[:, perm])
    torch.testing.assert_close(b["c_s"], a["c_s"][:, perm])
    torch.testing.assert_close(b["c_o"], a["c_o"][:, perm])
    for key in ("v_s", "v_o", "logits_s", "logits_o"):
        torch.testing.assert_close(b[key], a[key])


@pytest.mark.parametrize("rounds", [1, 2])
def test_every_parameter_gets_a_gradient(rounds):
    model = CollaborativeLearning(D, K, M, rounds=rounds, dropout=0.2).train()
    fs, fo = _inputs(3)
    target = torch.tensor([0, 2, 3])
    loss = cln_loss(model(fs, fo), target)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_rounds1_temporal_head_ignores_spatial_attention_weights():
    """Documented: with rounds=1 the temporal head does not depend on W^s, W_v^o, w_hs."""
    model = _model(rounds=1)
    fs, fo = _inputs(4)
    model(fs, fo)["logits_o"].sum().backward()
    for name in ("W_s", "W_vo", "w_hs"):
        assert getattr(model, name).weight.grad is None
    model.zero_grad(set_to_none=True)
    model2 = _model(rounds=2)
    model2(fs, fo)["logits_o"].sum().backward()
    for name in ("W_s", "W_vo", "w_hs"):
        assert getattr(model2, name).weight.grad.abs().sum() > 0


def test_single_segment_is_identity_pooling():
    model = _model()
    fs, fo = _inputs(5, n=1)
    out = model(fs, fo)
    torch.testing.assert_close(out["c_s"], torch.ones(B, 1))
    torch.testing.assert_close(out["c_o"], torch.ones(B, 1))
    torch.testing.assert_close(out["v_s"], fs[:, 0])
    torch.testing.assert_close(out["v_o"], fo[:, 0])


def test_deterministic_given_seed():
    fs, fo = _inputs(6)
    a = _model(seed=7)(fs, fo)
    b = _model(seed=7)(fs, fo)
    c = _model(seed=8)(fs, fo)
    for key in a:
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["logits_s"], c["logits_s"])


def test_cln_loss_values():
    out = dict(logits_s=torch.tensor([[2.0, 0.0]]), logits_o=torch.tensor([[0.0, 0.0]]))
    # CE = -log softmax: log(1 + e^-2) + log 2
    expected = torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log(torch.tensor(2.0))
    torch.testing.assert_close(cln_loss(out, torch.tensor([0])), expected)
    # multi-hot: BCE-with-logits mean over the 2 classes, both heads
    bce_s = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(0.0)))) / 2
    bce_o = torch.log(torch.tensor(2.0))
    torch.testing.assert_close(cln_loss(out, torch.tensor([[1.0, 1.0]])), bce_s + bce_o)


def test_input_validation():
    model = _model()
    fs, fo = _inputs()
    with pytest.raises(ValueError, match="differ in shape"):
        model(fs, fo[:, :3])
    with pytest.raises(ValueError, match=r"\(B, N, d\)"):
        model(fs[0], fo[0])
    with pytest.raises(ValueError, match="feature_dim"):
        model(fs[..., :5], fo[..., :5])
    with pytest.raises(ValueError, match="rounds"):
        CollaborativeLearning(D, K, M, rounds=0)
    with pytest.raises(ValueError, match="multi-hot"):
        cln_loss(model(fs, fo), torch.ones(B, M + 1))
    with pytest.raises(ValueError, match="integer"):
        cln_loss(model(fs, fo), torch.zeros(B))
