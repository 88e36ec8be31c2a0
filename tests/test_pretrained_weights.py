"""No silent from-scratch training (issue 25 item 1): a config that asks for ImageNet VGG16 weights stops
before any training when they are absent, with the path, the command that fetches them and the opt-out;
with a stand-in file under the hub path they load; ``pretrained=false`` builds from scratch and is stated."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from htsc_core import cli, report
from htsc_core.config import from_params
from htsc_core.models import vgg as vgg_mod
from htsc_core.models.vgg import MissingPretrainedWeights, build_vgg16
from htsc_core.train import stages
from htsc_core.train.streams import build_stream, imagenet_needed

FETCH = "python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\""


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    """TORCH_HOME -> an empty folder (torch.hub.get_dir() = TORCH_HOME/hub); every download attempt raises."""
    def boom(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() of another test must not win over TORCH_HOME
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert vgg_mod.imagenet_weights_path(False) == str(expected)
    return expected


def test_file_names_are_torchvisions():
    for bn, weights in ((False, torchvision.models.VGG16_Weights), (True, torchvision.models.VGG16_BN_Weights)):
        assert vgg_mod._TORCHVISION_FILES[bn] == Path(weights[vgg_mod.IMAGENET_WEIGHTS].url).name


def test_paper_spatial_model_without_weights_raises_with_path_command_and_opt_out(empty_hub):
    cfg = from_params(profile="paper")
    assert cfg.pretrained and cfg.vgg_width == 1.0
    with pytest.raises(MissingPretrainedWeights) as err:
        build_stream(cfg, "spatial", 101)
    text = str(err.value)
    assert isinstance(err.value, FileNotFoundError)  # the CLI reports it in one line, exit 2
    assert str(empty_hub) in text and FETCH in text and "--set pretrained=false" in text


def test_train_entry_point_stops_before_reading_data(empty_hub, tmp_path):
    cfg = from_params(profile="paper", data_root=str(tmp_path / "no-data"), runs_dir=str(tmp_path / "runs"))
    with pytest.raises(MissingPretrainedWeights):  # not the FileNotFoundError of the absent dataset
        stages.train(cfg, "spatial")
    assert not (tmp_path / "runs").exists()


def test_cli_train_exits_2_with_the_message(empty_hub, tmp_path, capsys):
    rc = cli.main(["train", "spatial", "--profile", "paper", "--data-root", str(tmp_path),
                   "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("htsc: error: pretrained=true") and str(empty_hub) in err


def test_reproduce_paper_stops_before_any_notebook(empty_hub, tmp_path, capsys, monkeypatch):
    import papermill

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: ran.append(a))
    results = tmp_path / "results"
    rc = cli.main(["reproduce", "--profile", "paper", "--dataset", "ucf101", "--data-root", str(tmp_path),
                   "--results-dir", str(results), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc != 0 and str(empty_hub) in err and FETCH in err and "--set pretrained=false" in err
    assert not ran and not list(results.rglob("*.ipynb")) and not list(results.rglob("*.json"))


def test_stand_in_weights_under_the_hub_path_are_loaded(empty_hub):
    """A state dict of torchvision's keys and shapes, each tensor a distinct constant, saved where torch.hub
    caches the ImageNet file: the paper-profile spatial VGG16 carries it (fc8 of 1000 classes is not copied)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg16(weights=None).state_dict().items()}
    state = {k: torch.full(shape, float(i + 1)) for i, (k, shape) in enumerate(shapes.items())}
    empty_hub.parent.mkdir(parents=True)
    torch.save(state, empty_hub)
    del state
    cfg = from_params(profile="paper")
    model = build_vgg16(cfg, num_classes=101, in_channels=3)
    own = model.state_dict()
    for i, key in enumerate(shapes):
        if key.startswith("classifier.6."):
            assert own[key].shape[0] == 101 and not (own[key] == i + 1).all()
        else:
            mine = "body." + key[len("features."):] if key.startswith("features.") else key
            assert (own[mine] == i + 1).all(), key


def test_pretrained_false_builds_from_scratch_and_is_recorded(empty_hub, tmp_path):
    cfg = from_params(profile="paper", pretrained=False)
    assert not imagenet_needed(cfg, "spatial")
    with torch.device("meta"):  # the full-width network's shapes, without 0.5 GB of parameters
        model = build_vgg16(cfg, num_classes=101, in_channels=3)
    assert model.width == 1.0 and model.fc8.out_features == 101
    assert json.loads(cfg.save(tmp_path / "config.json").read_text())["pretrained"] is False
    note = report.imagenet_note({"profile": "paper", "overrides": {"pretrained": False}})
    assert note.startswith("ImageNet initialisation: off (pretrained=false") and "default is on" in note
    assert report.imagenet_note({"profile": "paper", "overrides": {}}).startswith("ImageNet initialisation: on")


def test_results_header_states_the_initialisation(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "ROOT", tmp_path)
    (tmp_path / "metrics").mkdir()
    meta = {"parameters": {"dataset": "ucf101", "profile": "paper", "seed": 0, "overrides": {"pretrained": False}},
            "git_commit": "0" * 40, "cpu_count": 8, "total_seconds": 60, "seconds_per_notebook": {}}
    (tmp_path / "metrics" / "reproduce.json").write_text(json.dumps(meta))
    text = report.results_markdown(tmp_path / ".")
    assert "ImageNet initialisation: off (pretrained=false, set for this run; the paper profile's default is on)" \
        in text


def test_imagenet_not_needed_where_trained_weights_replace_it(tmp_path):
    cfg = from_params(profile="paper", runs_dir=str(tmp_path))
    assert imagenet_needed(cfg, "spatial") and imagenet_needed(cfg, "tvl1") and not imagenet_needed(cfg, "motion")
    assert not imagenet_needed(cfg, "spatial", load_trained=True)
    (tmp_path / "spatial").mkdir()
    (tmp_path / "spatial" / "best.pt").write_bytes(b"")
    assert imagenet_needed(cfg, "spatial") and not imagenet_needed(cfg, "temporal")  # cross-modality init
