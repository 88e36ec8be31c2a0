"""train/scores.py (alignment of streams, consensus) and train/streams.py + train/stages.py (shared policies, steps)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from htsc_core.config import from_params
from htsc_core.train.scores import align_streams
from htsc_core.train import stages
from htsc_core.train.streams import classification_loss, consensus, correct_count, make_optimizer, num_classes


def stream(ids, offset=0.0):
    ids = np.array(ids)
    return {"video_ids": ids, "scores": np.arange(len(ids), dtype=float)[:, None] + offset,
            "labels": np.array([int(i[-1]) for i in ids])}


def test_align_reorders_every_array_by_video_id():
    a = stream(["v1", "v2", "v3"])
    b = stream(["v3", "v1", "v2"], offset=10)
    out = align_streams({"a": a, "b": b})
    assert out["b"]["video_ids"].tolist() == ["v1", "v2", "v3"]
    assert out["b"]["scores"][:, 0].tolist() == [11.0, 12.0, 10.0]  # rows moved with their ids
    assert out["b"]["labels"].tolist() == [1, 2, 3]
    assert out["a"]["scores"][:, 0].tolist() == [0.0, 1.0, 2.0]


def test_align_raises_instead_of_dropping_videos():
    with pytest.raises(ValueError, match=r"1 only in 'a' \['v3'\].*skipped.jsonl"):
        align_streams({"a": stream(["v1", "v2", "v3"]), "b": stream(["v1", "v2"])})
    with pytest.raises(ValueError, match="duplicate"):
        align_streams({"a": stream(["v1", "v1"]), "b": stream(["v1", "v1"])})


def test_classification_loss_is_ce_for_indices_and_bce_for_multi_hot():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    ce = -torch.log_softmax(logits, 1)[0, 0]
    torch.testing.assert_close(classification_loss(logits, torch.tensor([0])), ce)
    target = torch.tensor([[1.0, 0.0, 1.0]])
    p = torch.sigmoid(logits)
    bce = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    torch.testing.assert_close(classification_loss(logits, target), bce)
    with pytest.raises(ValueError, match="integer"):
        classification_loss(logits, torch.tensor([0.0]))


def test_consensus_and_correct_count():
    per_view = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 1.0], [0.0, 3.0]])
    torch.testing.assert_close(consensus(per_view, 2), torch.tensor([[2.0, 1.0], [0.0, 2.0]]))
    assert correct_count(torch.tensor([[2.0, 1.0], [0.0, 2.0]]), torch.tensor([0, 0])) == 1.0
    assert correct_count(torch.tensor([[2.0, 1.0]]), torch.tensor([[0.0, 1.0]])) == 0.0  # multi-label miss


def test_adam_means_adamw_with_the_config_weight_decay():
    cfg = from_params(profile="smoke", weight_decay=0.01)
    p = torch.nn.Parameter(torch.ones(3))
    opt = make_optimizer(cfg, [{"params": [p], "lr": 0.1}], kind="adam")
    assert type(opt) is torch.optim.AdamW and opt.param_groups[0]["weight_decay"] == 0.01
    sgd = make_optimizer(cfg.replace(optimizer="sgd"), [p])
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["momentum"] == 0.9
    motion = stages._optimizer(cfg.replace(optimizer="sgd"), "motion", torch.nn.Linear(2, 2))
    assert type(motion) is torch.optim.AdamW  # MotionNet: Adam as in the release, whatever the classifiers use


def test_nominal_class_counts():
    assert num_classes(from_params(profile="paper", dataset="hmdb51"), from_data=False) == 51
    cfg = from_params(profile="smoke")
    assert num_classes(cfg, from_data=False) == 3 * cfg.synth_classes_per_family


def test_image_step_loss_and_stats():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 3))
    batch = {"rgb": torch.rand(2, 2, 3, 2, 2), "label": torch.tensor([0, 2])}
    loss, stats = stages.image_step("rgb")(model, batch)
    logits = model(batch["rgb"].flatten(0, 1)).view(2, 2, 3).mean(1)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, batch["label"]))
    assert stats["count"] == 2 and stats["correct"] == float((logits.argmax(1) == batch["label"]).sum())
