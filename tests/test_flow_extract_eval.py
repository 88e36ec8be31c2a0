"""TV-L1 extraction (htsc_core/flow/extract.py), flow scoring (evaluate.py) and `htsc flow` (cli.py)."""
from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from scipy import ndimage

from htsc_core.config import from_params
from htsc_core.data.records import VideoRecord
from htsc_core.flow import evaluate as ev
from htsc_core.data import flow_storage as storage
from htsc_core.flow.extract import SUMMARY_NAME, extract_flow

SIZE, FRAMES, DX = 32, 5, 1  # content moves 1 px right per frame -> flow (+1, 0)


def texture(seed, n=SIZE):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((n, n, 3)).astype(np.float32), (0, 0), 1.2)
    img = (img - img.min()) / (img.max() - img.min())
    return (255 * img).astype(np.uint8)


def moving_frames(seed):
    base = texture(seed)
    return np.stack([np.roll(base, DX * t, axis=1) for t in range(FRAMES)])  # frame_t(p) = frame_{t+1}(p + (1, 0))


def write_mp4(path: Path, frames: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "4"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def gt_flow():
    gt = np.zeros((FRAMES - 1, SIZE, SIZE, 2), np.float16)
    gt[..., 0] = DX
    return gt


def make_root(root: Path) -> dict[str, VideoRecord]:
    """Tiny synthetic set in the CONTRACTS.md layout: class A, test g01, train g08/g09; GT for every video."""
    recs = {}
    for i, (g, split) in enumerate((("g01", "test"), ("g08", "train"), ("g09", "train"))):
        vid = f"A/v_A_{g}_c01"
        write_mp4(root / "videos" / f"{vid}.mp4", moving_frames(i))
        gt_path = root / "flow_gt" / f"{vid}.npy"
        gt_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(gt_path, gt_flow())
        recs[vid] = VideoRecord(path=(root / "videos" / f"{vid}.mp4").absolute(), label=0, split=split,
                                video_id=vid, group=g)
    splits = root / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 A\n")
    (splits / "trainlist01.txt").write_text("A/v_A_g08_c01.mp4 1\nA/v_A_g09_c01.mp4 1\n")
    (splits / "testlist01.txt").write_text("A/v_A_g01_c01.mp4\n")
    (root / "classes.json").write_text(json.dumps({"classes": [{"index": 1, "name": "A", "family": "motion"}]}))
    return recs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("synth")
    make_root(r)
    return r


def cfg_for(root: Path, **kw):
    return from_params({"profile": "smoke", "data_root": str(root), "frame_size": SIZE, "image_size": 32,
                        "results_dir": str(root / "results"), **kw})


def records_of(root: Path) -> list[VideoRecord]:
    out = []
    for p in sorted((root / "videos").rglob("*.mp4")):
        vid = p.relative_to(root / "videos").with_suffix("").as_posix()
        out.append(VideoRecord(path=p.absolute(), label=0, split="train", video_id=vid))
    return out


# ----------------------------------------------------------------------------- extract
def test_extract_resumable_and_skips_unreadable(root, tmp_path, caplog):
    bad = tmp_path / "broken" / "v_A_g10_c01.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00\x01 definitely not a video")
    recs = records_of(root) + [VideoRecord(path=bad, label=0, split="train", video_id="A/v_A_g10_c01")]
    cfg, out = cfg_for(root), tmp_path / "flow"

    s1 = extract_flow(cfg, out=out, records=recs)
    assert (s1["done"], s1["skipped"], s1["failed"]) == (3, 0, 1)
    assert s1["failed_videos"][0]["path"] == str(bad) and "v_A_g10_c01.mp4" in s1["failed_videos"][0]["error"]
    assert "v_A_g10_c01.mp4" in caplog.text  # logged with the file name
    assert s1["pairs"] == 3 * (FRAMES - 1)
    jpgs = list(out.rglob("*.jpg"))
    assert len(jpgs) == 3 * 2 * (FRAMES - 1)
    assert s1["bytes_written"] >= sum(p.stat().st_size for p in jpgs)
    assert json.loads((out / SUMMARY_NAME).read_text())["done"] == 3
    assert not storage.is_complete(out, "A/v_A_g10_c01")

    # stored values are the TV-L1 flow of a 1 px rightward motion
    flow = storage.read_flow_video(out, "A/v_A_g01_c01")
    assert flow.shape == (FRAMES - 1, SIZE, SIZE, 2)
    np.testing.assert_allclose(np.median(flow[:, 8:-8, 8:-8].reshape(-1, 2), axis=0), [DX, 0], atol=0.35)

    # second run: everything complete is skipped, the broken file fails again, nothing written
    s2 = extract_flow(cfg, out=out, records=recs)
    assert (s2["done"], s2["skipped"], s2["failed"], s2["bytes_written"]) == (0, 3, 1, 0)

    # an interrupted video (temp file left, no .complete) is not counted as done and is redone
    vdir = out / "A" / "v_A_g08_c01"
    (vdir / storage.COMPLETE_MARKER).unlink()
    (vdir / "y_00003.jpg").unlink()
    stale = vdir / ".y_00003.jpg.abc123.tmp"
    stale.write_bytes(b"half")
    assert not storage.is_complete(out, "A/v_A_g08_c01")
    s3 = extract_flow(cfg, out=out, records=recs)
    assert (s3["done"], s3["skipped"], s3["failed"]) == (1, 2, 1)
    assert storage.is_complete(out, "A/v_A_g08_c01") and (vdir / "y_00003.jpg").is_file()
    assert not stale.exists()


def test_extract_chunks_overlap_by_one_frame(root, tmp_path):
    from htsc_core.flow.extract import extract_video

    rec = records_of(root)[0]
    whole = extract_video(rec.path, "w", tmp_path / "a", SIZE)
    chunked = extract_video(rec.path, "w", tmp_path / "b", SIZE, chunk=2)  # one pair per chunk
    assert whole["status"] == chunked["status"] == "done" and whole["pairs"] == chunked["pairs"] == FRAMES - 1
    np.testing.assert_array_equal(storage.read_flow_stack(tmp_path / "a", "w", range(FRAMES - 1)),
                                  storage.read_flow_stack(tmp_path / "b", "w", range(FRAMES - 1)))


def test_extract_limit_and_two_workers(root, tmp_path):
    cfg = cfg_for(root)
    s = extract_flow(cfg, out=tmp_path / "f1", records=records_of(root), limit=1)
    assert s["videos"] == 1 and s["done"] == 1
    s = extract_flow(cfg, out=tmp_path / "f2", records=records_of(root), workers=2)
    assert s["done"] == 3 and s["workers"] == 2
    with pytest.raises(ValueError):
        extract_flow(cfg, out=tmp_path / "f3", records=[], workers=0)


# ----------------------------------------------------------------------------- metrics
def test_endpoint_error_hand_values():
    f = np.zeros((1, 2, 2, 2))
    g = np.zeros((1, 2, 2, 2))
    g[0, 0, 0] = (3, 4)  # |(3, 4)| = 5 on one of 4 pixels
    assert ev.endpoint_error(f, g) == pytest.approx(1.25)
    with pytest.raises(ValueError):
        ev.endpoint_error(f, g[..., :1])


def test_warp_backward_matches_scipy():
    rng = np.random.default_rng(0)
    img = rng.random((12, 14)).astype(np.float32)
    flow = rng.uniform(-2, 2, (12, 14, 2)).astype(np.float32)
    ys, xs = np.mgrid[0:12, 0:14].astype(np.float32)
    ref = ndimage.map_coordinates(img, [ys + flow[..., 1], xs + flow[..., 0]], order=1, mode="nearest")
    np.testing.assert_allclose(ev.warp_backward(img, flow), ref, atol=1e-3)


def test_moving_mask_hand_values():
    gt = np.zeros((2, 4, 5, 2))
    gt[..., 0] = 1.0  # camera pan 1 px right everywhere
    gt[0, 1:3, 1:3] = (1.0, 2.0)  # a 2 x 2 object moving 2 px down relative to the pan
    gt[1, 0, 0] = (1.4, 0.0)  # 0.4 px off the pan: not "moving"
    mask = ev.moving_mask(gt)
    assert mask[0].sum() == 4 and mask[0, 1:3, 1:3].all() and not mask[1].any()
    with pytest.raises(ValueError, match="moving_mask"):
        ev.moving_mask(gt[0])


def test_region_masks_hand_values():
    gt = np.zeros((1, 10, 10, 2))
    gt[..., 0] = 1.0  # pan 1 px right
    gt[0, 0, 0] = (3.0, 0.0)  # moving, but in the border band (1 px wide at 10 %)
    gt[0, 4:6, 4:7] = (1.0, -1.0)  # a 2 x 3 moving object in the interior
    m = ev.region_masks(gt)
    assert m["moving"].sum() == 6 and m["moving"][0, 4:6, 4:7].all()
    assert m["border"].sum() == 100 - 64 and m["background"].sum() == 64 - 6
    assert not (m["moving"] & m["background"]).any() and (m["moving"] | m["background"] | m["border"]).all()
    # EPE by region of a flow wrong by 2 px on the object only and by 1 px in the border: hand values
    flow = gt.copy()
    flow[0, 4:6, 4:7, 1] += 2.0
    flow[0, 0, :, 0] -= 1.0
    assert ev.endpoint_error(flow[m["moving"]], gt[m["moving"]]) == pytest.approx(2.0)
    assert ev.endpoint_error(flow[m["background"]], gt[m["background"]]) == pytest.approx(0.0)
    assert ev.endpoint_error(flow[m["border"]], gt[m["border"]]) == pytest.approx(10 / 36)


def test_zero_estimator_epe_is_mean_gt_magnitude(tmp_path):
    # hand-made pair: two frames and an arbitrary ground-truth field
    frames = np.stack([texture(5), texture(6)])
    vid = "B/v_B_g01_c01"
    path = write_mp4(tmp_path / "videos" / f"{vid}.mp4", frames)
    gt = np.random.default_rng(1).normal(0, 2, (1, SIZE, SIZE, 2)).astype(np.float16)
    (tmp_path / "flow_gt" / "B").mkdir(parents=True)
    np.save(tmp_path / "flow_gt" / f"{vid}.npy", gt)
    rec = VideoRecord(path=path, label=0, split="test", video_id=vid)
    rows = ev.evaluate_flow(cfg_for(tmp_path), ["zero"], records=[rec])
    assert len(rows) == 1 and rows[0]["method"] == "zero" and rows[0]["pairs"] == 1
    g = gt.astype(np.float64)
    assert rows[0]["epe"] == pytest.approx(np.hypot(g[..., 0], g[..., 1]).mean(), rel=1e-6)
    # epe_moving: over interior pixels whose truth differs from the median truth by > 0.5 px; epe_background:
    # the other interior pixels; epe_border: the 10 % band (independent numpy)
    rel_mag = np.hypot(*(g[0] - np.median(g[0].reshape(-1, 2), axis=0)).transpose(2, 0, 1))
    b = round(0.1 * SIZE)
    interior = np.zeros((SIZE, SIZE), bool)
    interior[b:-b, b:-b] = True
    mag = np.hypot(g[0, ..., 0], g[0, ..., 1])
    for key, region in (("epe_moving", (rel_mag > 0.5) & interior), ("epe_background", (rel_mag <= 0.5) & interior),
                        ("epe_border", ~interior)):
        assert rows[0][key] == pytest.approx(mag[region].mean(), rel=1e-6)
        assert rows[0]["per_video"][key] == [pytest.approx(mag[region].mean(), rel=1e-6)]
    # photometric error of zero flow: mean |frame_0 - frame_1| in [0, 1] on the 10 % border-masked interior
    from htsc_core.data.video import read_frames

    dec = read_frames(path, [0, 1]).astype(np.float64) / 255
    b = round(0.1 * SIZE)
    assert rows[0]["photometric"] == pytest.approx(np.abs(dec[0] - dec[1])[b:-b, b:-b].mean(), rel=1e-5)


def test_evaluate_ranks_tvl1_above_zero_and_schema(root):
    rows = ev.evaluate_flow(cfg_for(root), "tvl1,dis,zero", max_videos=1)  # test split via the registry
    by = {r["method"]: r for r in rows}
    assert set(by) == {"tvl1", "dis", "zero"}
    assert all(set(r) == set(ev.ROW_KEYS) for r in rows)
    assert by["zero"]["epe"] == pytest.approx(DX, rel=1e-3)
    assert by["tvl1"]["epe"] < 0.5 * by["zero"]["epe"]
    assert by["tvl1"]["photometric"] < by["zero"]["photometric"]
    assert by["tvl1"]["pairs"] == FRAMES - 1 and by["tvl1"]["resolution"] == f"{SIZE}x{SIZE}"
    assert by["tvl1"]["ms_per_pair"] > 0 and by["tvl1"]["threads"] == 1
    with pytest.raises(ValueError, match="checkpoint"):
        ev.evaluate_flow(cfg_for(root), ["motionnet"])
    with pytest.raises(ValueError, match="unknown"):
        ev.parse_methods("tvl1,raft")


# ----------------------------------------------------------------------------- CLI
def test_cli_extract_and_eval(root, tmp_path, capsys):
    from htsc_core.cli import main

    out = tmp_path / "flow"
    assert main(["flow", "extract", "--data-root", str(root), "--profile", "smoke", "--out", str(out)]) == 0
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["done"] == 3 and summary["failed"] == 0  # train + val + test
    assert {"git_commit", "config", "cv2"} <= set(summary["metadata"])

    js = tmp_path / "flow_eval.json"
    assert main(["flow", "eval", "--data-root", str(root), "--profile", "smoke", "--methods", "zero,farneback",
                 "--max-videos", "1", "--out", str(js)]) == 0
    data = json.loads(js.read_text())
    assert [r["method"] for r in data["rows"]] == ["zero", "farneback"]
    assert set(data["rows"][0]) == set(ev.ROW_KEYS)
    assert data["methods"] == ["zero", "farneback"] and data["max_videos"] == 1
    assert {"git_commit", "torch", "profile", "config"} <= set(data["metadata"])
    assert "farneback" in capsys.readouterr().out


def test_cli_eval_on_every_kth_validation_video_with_a_tvl1_preset(smoke_set_source, tmp_path):
    """What chose the extraction preset (docs/SYNTHETIC.md section 6): `htsc flow eval --subset val --every K
    --tvl1-preset P` scores every K-th validation video with that preset and records both."""
    from htsc_core.cli import main
    from htsc_core.data.registry import load_split

    runs = {}
    for preset in ("denseflow", "minimal"):
        js = tmp_path / f"{preset}.json"
        assert main(["flow", "eval", "--data-root", str(smoke_set_source), "--profile", "smoke", "--subset", "val",
                     "--every", "2", "--max-videos", "2", "--methods", "tvl1", "--tvl1-preset", preset,
                     "--out", str(js)]) == 0
        runs[preset] = json.loads(js.read_text())
    val = load_split(cfg_for(smoke_set_source), "val")[0]
    assert runs["minimal"]["videos"] == [r.video_id for r in val[::2][:2]] and len(val) > 2
    assert runs["minimal"]["every"] == 2 and runs["minimal"]["subset"] == "val"
    assert runs["minimal"]["tvl1_preset"] == "minimal" and runs["denseflow"]["tvl1_preset"] == "denseflow"
    assert runs["minimal"]["rows"][0]["epe"] != runs["denseflow"]["rows"][0]["epe"]  # the preset was applied
    assert main(["flow", "eval", "--data-root", str(smoke_set_source), "--profile", "smoke", "--every", "0",
                 "--out", str(tmp_path / "x.json")]) == 2  # a user error, said as such


def test_extract_truth_writes_the_stored_flow_and_refuses_a_missing_one(root, tmp_path):
    """The flow swap (docs/SYNTHETIC.md section 7): `--method truth` stores flow_gt in TV-L1's JPEG format."""
    cfg, out = cfg_for(root), tmp_path / "flow_truth"
    summary = extract_flow(cfg, out=out, records=records_of(root), method="truth")
    assert (summary["done"], summary["failed"], summary["method"]) == (3, 0, "truth")
    flow = storage.read_flow_video(out, "A/v_A_g01_c01")
    # the stored truth is (+1, 0) everywhere; JPEG quantisation of +-20 px in 255 steps: within 0.1 px
    np.testing.assert_allclose(flow, np.broadcast_to([DX, 0], flow.shape), atol=0.1)
    nogt = tmp_path / "nogt" / "A" / "v_A_g02_c01.mp4"
    write_mp4(nogt, moving_frames(7))
    s = extract_flow(cfg, out=tmp_path / "f2", method="truth",
                     records=[VideoRecord(path=nogt, label=0, split="train", video_id="A/v_A_g02_c01")])
    assert s["failed"] == 1 and "flow_gt" in s["failed_videos"][0]["error"]
    with pytest.raises(ValueError, match="checkpoint"):
        extract_flow(cfg, out=tmp_path / "f3", method="motionnet")
    with pytest.raises(ValueError, match="no MotionNet checkpoint .*missing.pt"):
        extract_flow(cfg, out=tmp_path / "f3", method="motionnet", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="method"):
        extract_flow(cfg, out=tmp_path / "f3", method="farneback")


def test_extract_motionnet_matches_the_estimator_and_flow_dir_points_the_stream_there(root, tmp_path):
    import torch

    from htsc_core.flow.estimators import make_estimator
    from htsc_core.models.motionnet import build_motionnet
    from htsc_core.train.streams import flow_root

    cfg = cfg_for(root)
    torch.manual_seed(0)
    net = build_motionnet(cfg)
    ckpt = tmp_path / "motion.pt"
    torch.save({"model": net.state_dict()}, ckpt)
    out = tmp_path / "flow_motionnet"
    summary = extract_flow(cfg, out=out, records=records_of(root)[:1], method="motionnet", checkpoint=ckpt)
    assert summary["done"] == 1 and summary["checkpoint"] == str(ckpt)
    from htsc_core.data.video import read_frames, video_length

    rec = records_of(root)[0]
    frames = read_frames(rec.path, range(video_length(rec.path)), size=cfg.frame_size)
    expected = storage.dequantise_flow(storage.quantise_flow(make_estimator("motionnet", checkpoint=ckpt,
                                                                            cfg=cfg).estimate(frames)))
    np.testing.assert_allclose(storage.read_flow_video(out, rec.video_id), expected, atol=0.2)
    assert flow_root(cfg) == root / "flow_tvl1"
    assert flow_root(cfg_for(root, flow_dir="flow_motionnet")) == root / "flow_motionnet"
    with pytest.raises(ValueError, match="flow_dir"):
        cfg_for(root, flow_dir="../elsewhere")
