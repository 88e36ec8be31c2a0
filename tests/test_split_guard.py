"""Choose on validation, report on test: training cannot read the test split (issue 23, item 1)."""
import pytest
import torch

from htsc_core.config import from_params
from htsc_core.data import registry
from htsc_core.train import stages


@pytest.fixture
def cfg(smoke_set, tmp_path):
    return from_params({"profile": "smoke", "data_root": str(smoke_set), "runs_dir": str(tmp_path / "runs"),
                        "results_dir": str(tmp_path / "results")})


def test_sealed_test_split_raises_and_reopens(cfg):
    assert registry.load_split(cfg, "test")[0]  # outside: the reporting notebooks read it
    with registry.test_split_sealed("a selection step"):
        assert registry.load_split(cfg, "val")[0] and registry.load_split(cfg, "train")[0]
        with pytest.raises(registry.TestSplitSealed, match="during a selection step"):
            registry.load_split(cfg, "test")
    assert registry.load_split(cfg, "test")[0]


@pytest.mark.parametrize("stage", ["spatial", "cln", "tclsta"])
def test_every_stage_trains_with_the_test_split_sealed(cfg, monkeypatch, stage):
    seen = []

    def peek(*args, **kw):  # stands in for the stage's work: what would a read of "test" do here?
        try:
            registry.load_split(cfg, "test")
        except registry.TestSplitSealed as exc:
            seen.append(str(exc))
        raise StopIteration

    monkeypatch.setattr(stages, {"cln": "train_cln", "tclsta": "train_tclsta"}.get(stage, "build_stream"), peek)
    with pytest.raises(StopIteration):
        stages.train(cfg, stage)
    assert seen and f"training of the '{stage}' stage" in seen[0]
    assert registry.load_split(cfg, "test")[0]  # and it reopens afterwards, even after an error


@pytest.mark.parametrize("stage", ["spatial", "motion", "temporal", "tvl1", "rgbdiff", "conv_fusion", "c3d"])
def test_every_stream_stage_keeps_its_lowest_validation_loss_epoch(cfg, monkeypatch, stage):
    """best.pt is chosen on the validation loss (docs/DESIGN.md section 3), for every stage the trainer runs;
    the Trainer itself links best.pt to the epoch of lowest monitored loss (tests/test_engine.py)."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_trainer(*args, **kw):
        seen.update(kw, has_val=kw.get("val_loader") is not None)
        raise Stop

    monkeypatch.setattr(stages, "Trainer", fake_trainer)
    monkeypatch.setattr(stages, "build_stream", lambda *a, **k: torch.nn.Linear(1, 1))
    monkeypatch.setattr(stages, "stage_optimizer",
                        lambda *a, **k: torch.optim.SGD([torch.zeros(1, requires_grad=True)]))
    monkeypatch.setattr(stages, "check_stored_flow", lambda *a, **k: {})  # no TV-L1 flow here: not this test's point
    with pytest.raises(Stop):
        stages.train(cfg, stage)
    assert seen["monitor"] == "loss" and seen["has_val"]
