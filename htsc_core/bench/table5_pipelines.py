"""Table 5 benchmark, the pipelines: seven ways from decoded frames to class scores, timed at one resolution
(paper section 4.4, Table 5; docs/DESIGN.md section 7).

Seven pipelines run in one process, on the same machine, decoded frames, resolution, batch and threads,
from decoded frames (uint8 arrays in memory) to class scores:

1. ``two_stream``: OpenCV Dual TV-L1 on every frame pair of each segment's stack -> denseflow-style
   JPEGs (bound 20) written to a temporary directory -> read back and decoded -> spatial VGG16 on the
   centre frame + 20-channel temporal VGG16 on the stored flow -> late fusion.
2. ``hts``: the stack -> MotionNet -> :func:`flow_to_cnn_input` -> temporal VGG16, plus the spatial
   VGG16 -> late fusion (spatial + 1.5 x temporal, the Hidden Two-Stream protocol).
3. ``htsc``: HTS up to fc7 -> the collaborative learning network (section 3.2) -> AWL (Eq. 14-15).
4. ``tsn_rgb_diff``: TSN's RGB difference (Wang et al. 2016, sec. 3.2; docs/RGBDIFF.md): the D frames of
   each stack centred on its centre frame -> D-1 differences computed on the fly -> 3(D-1)-channel
   VGG16, plus the spatial VGG16 -> late fusion (spatial + 1.5 x RGB difference). No flow at all.
5. ``two_stream_fusion``: two-stream conv fusion (Feichtenhofer et al. 2016; the paper's Table 5 row
   "two-stream + fusion"): the stored TV-L1 flow of pipeline 1, then the spatial and temporal VGG16s fused
   at conv5 over the S segments (:class:`~htsc_core.models.two_stream_fusion.TwoStreamConvFusion`).
6. ``c3d``: C3D (Tran et al. 2015), one 3D-conv net on each segment's stack of L RGB frames (the frames every
   pipeline consumes; C3D's own clips are 16 frames at 112 px), the mean of the S clips' softmax. No flow.
7. ``tclsta``: TCLSTA (Peng, Zhao and Zhang 2018; docs/TCLSTA.md): the stored TV-L1 flow of pipeline 1, the
   spatial and temporal VGG16s to conv5 (no fc layers), then its spatial- and temporal-level attention and the
   static-motion collaborative model (:class:`~htsc_core.models.tclsta.TCLSTA`, the heads in fp32 as scored).

Pipelines 2 and 3 are one forward of :class:`~htsc_core.models.htsc.HTSC` (without and with the CLN),
the model evaluation runs for Tables 3-4, so the benchmark times what the evaluation computes.

The clips are synthesised (:func:`make_clips`: a photograph panned by a camera, with a moving object), so
TV-L1 and the JPEG flow files get realistic work; :func:`benchmark_resolution` interleaves the pipelines
over the repeats so machine noise hits every method alike, then adds interleaved HTS / HTSC rounds up to a
fixed number, and records the interval of HTSC / HTS they give (:func:`resolve_ratio`).

Every network runs under the precision policy that scoring uses (``precision``: bf16 autocast where the
CPU computes bf16 natively, fp32 elsewhere; train/scores.py, tables.py); the CLN leaves autocast and runs in
fp32 inside :class:`~htsc_core.models.htsc.HTSC`, as it is scored. TV-L1 and the flow JPEGs are not networks.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from htsc_core.bench.common import RATIO_TOLERANCE, StepTimer, autocast, flow_field_ratio, resolve_ratio, spread, sync
from htsc_core.bench.table5_networks import build_networks
from htsc_core.data.flow_storage import encode_flow_jpeg, flow_file, read_flow_stack
from htsc_core.data.sampling import diff_window_indices
from htsc_core.data.transforms import rgb_difference
from htsc_core.flow.estimators import TVL1Estimator
from htsc_core.fusion import hts_fusion
from htsc_core.models.htsc import video_scores
from htsc_core.paper import TABLE5_FPS
from htsc_core.precision import Precision
from htsc_core.utils import progress

METHODS = ("two_stream", "hts", "htsc", "tsn_rgb_diff", "two_stream_fusion", "c3d", "tclsta")
FLOW_STEPS = ("tvl1", "flow_jpeg_write", "flow_jpeg_read")  # two-stream's flow stage (shared with the fusion)
# the pipelines charged that flow stage: OpenCV's TV-L1 and the JPEGs run on the CPU whatever the networks' device
TVL1_METHODS = ("two_stream", "two_stream_fusion", "tclsta")
SHARES_FLOW = ("two_stream_fusion", "tclsta")  # methods charged two-stream's flow stage of the same round


# ----------------------------------------------------------------------------- inputs
def make_clips(videos: int, segments: int, length: int, size: int, seed: int = 0) -> np.ndarray:
    """Decoded test clips uint8 (B, S, L, size, size, 3): a photo panned by a camera, with a moving object.

    Real image content (scikit-image's photographs) gives TV-L1 and the JPEG flow files realistic work
    and sizes; random noise would not.
    """
    if min(videos, segments, length, size) < 1 or length < 2:
        raise ValueError(f"make_clips: videos={videos}, segments={segments}, length={length}, size={size}; "
                         "expected positive values and length >= 2")
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    background = cv2.resize(skdata.astronaut(), (2 * size, 2 * size), interpolation=cv2.INTER_AREA)
    obj_side = max(4, size // 4)
    obj = cv2.resize(skdata.coffee()[100:300, 200:400], (obj_side, obj_side), interpolation=cv2.INTER_AREA)
    out = np.empty((videos, segments, length, size, size, 3), dtype=np.uint8)
    for b in range(videos):
        for s in range(segments):
            pan = rng.uniform(-1.5, 1.5, 2) * size / 64.0  # px per frame, scaled with the resolution
            move = rng.uniform(-3.0, 3.0, 2) * size / 64.0
            start = rng.uniform(0.2, 0.6, 2) * size
            pos0 = rng.uniform(0.2, 0.6, 2) * size
            for t in range(length):
                ox, oy = np.clip(start + t * pan, 0, size - 1).astype(int)
                frame = background[oy:oy + size, ox:ox + size].copy()
                px, py = np.clip(pos0 + t * move, 0, size - obj_side).astype(int)
                frame[py:py + obj_side, px:px + obj_side] = obj
                noise = rng.normal(0.0, 2.0, frame.shape)
                out[b, s, t] = np.clip(frame + noise, 0, 255).astype(np.uint8)
    return out



# ----------------------------------------------------------------------------- pipelines
def _scores(logits: torch.Tensor, videos: int) -> np.ndarray:
    """Per-view logits (B*S, M) -> video scores (B, M), the consensus HTSC uses (:func:`video_scores`)."""
    return video_scores(logits, videos).cpu().numpy()


def _rgb_input(clips: np.ndarray, device: torch.device) -> torch.Tensor:
    """Centre frame of every stack -> (B*S, 3, H, W) float in [0, 1], channels_last."""
    B, S, L, H, W, _ = clips.shape
    centre = np.ascontiguousarray(clips[:, :, L // 2]).reshape(B * S, H, W, 3)
    x = torch.from_numpy(centre).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


def stored_tvl1_input(clips: np.ndarray, estimator: TVL1Estimator, flow_dir: Path, timer: StepTimer,
                      device: torch.device) -> tuple[torch.Tensor, int]:
    """TV-L1 on every frame pair of each stack -> denseflow JPEGs written to ``flow_dir`` -> read back:
    (the temporal CNN input (B*S, 2(L-1), H, W), value - 128, channels_last; flow bytes written)."""
    B, S, L, H, W, _ = clips.shape
    stored = []
    nbytes = 0
    for b in range(B):
        for s in range(S):
            video_id = f"v{b:03d}_s{s:03d}"
            with timer("tvl1"):
                flow = estimator.estimate(clips[b, s])  # (L-1, H, W, 2) px
            with timer("flow_jpeg_write"):
                for i, f in enumerate(flow):
                    xb, yb = encode_flow_jpeg(f)  # denseflow: clip to +-20, [0, 255], JPEG
                    for comp, data in (("x", xb), ("y", yb)):
                        path = flow_file(flow_dir, video_id, comp, i)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(data)  # plain write, no fsync, as denseflow's cv::imwrite
                        nbytes += len(data)
            with timer("flow_jpeg_read"):
                stored.append(read_flow_stack(flow_dir, video_id, range(L - 1)))  # (2(L-1), H, W) uint8
    with timer("input"):
        flow_x = torch.from_numpy(np.stack(stored)).to(device).float().sub_(128.0)  # CONTRACTS: value - 128
    return flow_x.contiguous(memory_format=torch.channels_last), nbytes


def run_two_stream(clips: np.ndarray, nets: dict, estimator: TVL1Estimator, flow_dir: Path,
                   timer: StepTimer, device: torch.device, precision: Precision | None = None,
                   keep: dict | None = None) -> tuple[np.ndarray, int]:
    """Classic two-stream on decoded clips (B, S, L, H, W, 3) -> (scores (B, M), flow bytes written);
    ``keep`` (a dict) receives the stored flow read back (``flow``) for :func:`run_two_stream_fusion`."""
    B = clips.shape[0]
    flow_x, nbytes = stored_tvl1_input(clips, estimator, flow_dir, timer, device)
    if keep is not None:
        keep["flow"] = flow_x
    with timer("input"):
        rgb = _rgb_input(clips, device)
    with torch.inference_mode(), autocast(precision, device):
        with timer("spatial_cnn"):
            s_logits = nets["spatial"](rgb)
        with timer("temporal_cnn"):
            o_logits = nets["temporal"](flow_x)
        with timer("fusion"):
            scores = hts_fusion(_scores(s_logits, B), _scores(o_logits, B))
    return scores, nbytes


def run_two_stream_fusion(clips: np.ndarray, nets: dict, estimator: TVL1Estimator, flow_dir: Path,
                          timer: StepTimer, device: torch.device, precision: Precision | None = None,
                          stored: torch.Tensor | None = None) -> tuple[np.ndarray, int]:
    """Two-stream conv fusion (Feichtenhofer et al. 2016): the stored TV-L1 flow of two-stream, then the spatial
    and temporal VGG16s fused at conv5 over the S segments (:class:`TwoStreamConvFusion`) -> scores (B, M).
    ``stored``: the flow two-stream stored and read back for these clips (its flow stage then is not run here,
    and its time is added by the caller: :func:`benchmark_resolution`); flow bytes written then 0."""
    B, S = clips.shape[:2]
    if stored is None:
        flow_x, nbytes = stored_tvl1_input(clips, estimator, flow_dir, timer, device)
    else:
        flow_x, nbytes = stored, 0
    with timer("input"):
        rgb = _rgb_input(clips, device)
    with torch.inference_mode(), autocast(precision, device):
        with timer("fusion_cnn"):  # both streams to conv5, conv fusion, 3D conv and pooling, both heads
            out = nets["conv_fusion"](rgb.view(B, S, *rgb.shape[1:]), flow_x.view(B, S, *flow_x.shape[1:]), S)
        return out["scores"].float().cpu().numpy(), nbytes


def run_tclsta(clips: np.ndarray, nets: dict, estimator: TVL1Estimator, flow_dir: Path, timer: StepTimer,
               device: torch.device, precision: Precision | None = None,
               stored: torch.Tensor | None = None) -> tuple[np.ndarray, int]:
    """TCLSTA: the stored TV-L1 flow of two-stream (``stored``, as :func:`run_two_stream_fusion`), both VGG16s to
    conv5, then the attention and collaborative heads (:class:`~htsc_core.models.tclsta.TCLSTA`) -> scores (B, M)."""
    B, S = clips.shape[:2]
    if stored is None:
        flow_x, nbytes = stored_tvl1_input(clips, estimator, flow_dir, timer, device)
    else:
        flow_x, nbytes = stored, 0
    with timer("input"):
        rgb = _rgb_input(clips, device)
    with torch.inference_mode(), autocast(precision, device):
        with timer("tclsta_cnn"):  # both trunks to conv5, spatial / temporal attention, collaborative heads
            out = nets["tclsta"](rgb.view(B, S, *rgb.shape[1:]), flow_x.view(B, S, *flow_x.shape[1:]), S)
        return out["scores"].float().cpu().numpy(), nbytes


def _stack_input(clips: np.ndarray, device: torch.device) -> torch.Tensor:
    """Decoded clips uint8 (B, S, L, H, W, 3) -> stack (B, S, L, 3, H, W) float in [0, 1] (the dataset's "stack")."""
    return torch.from_numpy(clips).to(device).permute(0, 1, 2, 5, 3, 4).float().div_(255.0)


def run_hts(clips: np.ndarray, nets: dict, timer: StepTimer, device: torch.device,
            precision: Precision | None = None) -> np.ndarray:
    """Hidden Two-Stream: MotionNet -> temporal VGG16, spatial VGG16, late fusion -> scores (B, M)."""
    with torch.inference_mode(), autocast(precision, device):
        with timer("input"):
            stack = _stack_input(clips, device)
        out = nets["htsc"](stack, clips.shape[1], with_cln=False, timer=timer)
        return out["hts"].cpu().numpy()


def run_htsc(clips: np.ndarray, nets: dict, timer: StepTimer, device: torch.device,
             precision: Precision | None = None) -> np.ndarray:
    """HTSC: HTS to fc7 -> CLN (Eq. 7-9, fp32 inside the model) -> AWL (Eq. 14-15) -> scores (B, M)."""
    with torch.inference_mode(), autocast(precision, device):
        with timer("input"):
            stack = _stack_input(clips, device)
        out = nets["htsc"](stack, clips.shape[1], timer=timer)
        return out["htsc"].cpu().numpy()


def run_c3d(clips: np.ndarray, nets: dict, timer: StepTimer, device: torch.device,
            precision: Precision | None = None) -> np.ndarray:
    """C3D on every segment's stack (B, S, L, H, W, 3) -> the mean of the S clips' softmax: scores (B, M)."""
    with torch.inference_mode(), autocast(precision, device):
        with timer("input"):
            stack = _stack_input(clips, device).flatten(0, 1)  # (B*S, L, 3, H, W)
        with timer("c3d_cnn"):
            logits = nets["c3d"](stack)
        return _scores(logits, clips.shape[0])


def run_tsn_rgb_diff(clips: np.ndarray, nets: dict, timer: StepTimer, device: torch.device,
                     diff_length: int, precision: Precision | None = None) -> np.ndarray:
    """TSN RGB + RGB difference: the D frames of each stack centred on its centre frame (the dataset's
    :func:`diff_window_indices`) -> D-1 differences on the fly -> RGB-difference VGG16, spatial VGG16 on
    the centre frame -> late fusion (spatial + 1.5 x RGB difference) -> scores (B, M)."""
    B, S, L, H, W, _ = clips.shape
    win = diff_window_indices(np.arange(L)[None], diff_length, L)[0]  # (D,) positions in the stack
    with torch.inference_mode(), autocast(precision, device):
        with timer("input"):
            rgb = _rgb_input(clips, device)
            frames = torch.from_numpy(np.ascontiguousarray(clips[:, :, win])).to(device)  # (B, S, D, H, W, 3) uint8
        with timer("rgb_difference"):
            x = rgb_difference(frames.permute(0, 1, 2, 5, 3, 4).reshape(B * S, len(win), 3, H, W))
            x = x.contiguous(memory_format=torch.channels_last)  # (B*S, 3(D-1), H, W), pixel units
        with timer("spatial_cnn"):
            s_logits = nets["spatial"](rgb)
        with timer("rgbdiff_cnn"):
            d_logits = nets["rgbdiff"](x)
        with timer("fusion"):
            return hts_fusion(_scores(s_logits, B), _scores(d_logits, B))


# ----------------------------------------------------------------------------- one resolution
def benchmark_resolution(size: int, *, segments: int, stack_length: int, num_classes: int, vgg_width: float,
                         motion_width: float, vgg_batch_norm: bool, cln_hidden: int, cln_rounds: int,
                         repeats: int, videos: int, threads: int, device: torch.device, seed: int = 0,
                         label: str = "", rgbdiff_length: int = 5, precision: Precision | None = None,
                         ratio_rounds: int | None = None, ratio_tolerance: float = RATIO_TOLERANCE,
                         share_flow: bool = True, tvl1_params: dict | None = None, tclsta_attention: int = 64,
                         tclsta_lstm: int = 64) -> dict:
    """Time the pipelines of :data:`METHODS` at one resolution (interleaved per repeat, after one warm-up each).

    After ``repeats`` rounds of every pipeline, rounds of HTS and HTSC alone (interleaved, order alternating)
    are added until ``ratio_rounds`` rounds of them were run (default: ``repeats``, no extra round), a fixed
    number whatever the timings (issue 40); ``htsc_over_hts`` records the interval of HTSC / HTS they gave and
    whether it is within ``ratio_tolerance`` of its estimate (``resolved``). Networks run under ``precision``
    (None: fp32).
    ``tvl1_params``: OpenCV Dual TV-L1 settings (``cfg.tvl1_preset``; None = the library's defaults).
    ``share_flow``: two-stream fusion and TCLSTA take the flow two-stream computed, stored and read back in the
    same round (the same work on the same clips) and are charged that round's flow-stage seconds, rather than computing
    TV-L1 a second time (at 224 px, L = 11, TV-L1 is most of a round); False runs its own flow stage.
    """
    ratio_rounds = repeats if ratio_rounds is None else int(ratio_rounds)
    if repeats < 1 or videos < 1:
        raise ValueError(f"repeats={repeats}, videos={videos}; expected >= 1")
    if ratio_rounds < repeats:
        raise ValueError(f"ratio_rounds={ratio_rounds} < repeats={repeats}")
    if size % 32:
        raise ValueError(f"resolution {size} must be a multiple of 32 (MotionNet downsamples by 32)")
    clips = make_clips(videos, segments, stack_length, size, seed)
    nets = build_networks(num_classes, stack_length, vgg_width, motion_width, vgg_batch_norm, cln_hidden,
                          cln_rounds, seed, device, rgbdiff_length, tclsta_attention, tclsta_lstm)
    estimator = TVL1Estimator(threads=threads, **(tvl1_params or {}))  # None: OpenCV's defaults (denseflow)
    frames_per_video = segments * stack_length
    totals: dict[str, list[float]] = {m: [] for m in METHODS}
    steps: dict[str, list[dict]] = {m: [] for m in METHODS}
    storage: list[int] = []
    with tempfile.TemporaryDirectory(prefix="htsc_bench_flow_") as tmp:
        shared: dict = {}  # the latest two-stream flow and its flow-stage seconds (share_flow)

        def once(method: str, rep: int) -> tuple[float, dict]:
            timer = StepTimer(device)
            reuse = method in SHARES_FLOW and share_flow and bool(shared)
            sync(device)
            t0 = time.perf_counter()
            if method == "two_stream":
                keep: dict = {}
                _, nbytes = run_two_stream(clips, nets, estimator, Path(tmp) / f"r{rep}", timer, device, precision,
                                           keep)
                storage.append(nbytes)
                shared.update(flow=keep["flow"], times={k: timer.times[k] for k in FLOW_STEPS})
            elif method == "two_stream_fusion":
                run_two_stream_fusion(clips, nets, estimator, Path(tmp) / f"f{rep}", timer, device, precision,
                                      shared["flow"] if reuse else None)
            elif method == "tclsta":
                run_tclsta(clips, nets, estimator, Path(tmp) / f"t{rep}", timer, device, precision,
                           shared["flow"] if reuse else None)
            elif method == "hts":
                run_hts(clips, nets, timer, device, precision)
            elif method == "c3d":
                run_c3d(clips, nets, timer, device, precision)
            elif method == "tsn_rgb_diff":
                run_tsn_rgb_diff(clips, nets, timer, device, rgbdiff_length, precision)
            else:
                run_htsc(clips, nets, timer, device, precision)
            sync(device)
            seconds = time.perf_counter() - t0
            if reuse:  # the same flow stage as two-stream's, measured in this round: counted for the fusion too
                for k, v in shared["times"].items():
                    timer.times[k] += v
                seconds += sum(shared["times"].values())
            return seconds, dict(timer.times)

        def record(method: str, rep: int) -> None:
            seconds, st = once(method, rep)
            totals[method].append(seconds)
            steps[method].append(st)

        for m in METHODS:  # warm-up (allocator, oneDNN primitive caches, OpenCV buffers)
            once(m, -1)
        for rep in progress(range(repeats), desc=f"table5 {size}px", leave=False):
            for m in METHODS:  # interleaved, so machine noise hits every method alike
                record(m, rep)
        fps_of = lambda m: [videos * frames_per_video / t for t in totals[m]]  # noqa: E731
        for rnd in range(repeats, ratio_rounds):  # a fixed number: the time is chosen, the interval measured
            for m in (("hts", "htsc") if rnd % 2 else ("htsc", "hts")):  # alternate which runs first
                record(m, rnd)
        rounds = ratio_rounds
        ratio = resolve_ratio(fps_of("htsc"), fps_of("hts"), ratio_tolerance, seed)
    ratio["rounds"] = rounds
    rows, step_rows = [], []
    for m in METHODS:
        sec = spread(totals[m])
        vps = [videos / t for t in totals[m]]
        v = spread(vps)
        rows.append({
            # TSN RGB difference is not in the paper's Table 5: no paper_fps
            "method": m, "ours_fps": v["median"] * frames_per_video, "paper_fps": TABLE5_FPS.get(m, ""),
            "fps_min": v["min"] * frames_per_video, "fps_max": v["max"] * frames_per_video,
            "fps_q1": v["q1"] * frames_per_video, "fps_q3": v["q3"] * frames_per_video,
            "videos_per_s": v["median"], "seconds_per_video": sec["median"] / videos, "seconds": sec,
            "fps_repeats": [x * frames_per_video for x in vps],  # one per interleaved repeat, for ratio intervals
        })
        names = list(steps[m][0])
        med = {n: float(np.median([s.get(n, 0.0) for s in steps[m]])) for n in names}
        total = sum(med.values())
        for n in names:
            step_rows.append({"method": m, "step": n, "share": med[n] / total if total > 0 else 0.0,
                              "seconds_per_video": med[n] / videos})
    fps = {r["method"]: r["ours_fps"] for r in rows}
    step_s = {(r["method"], r["step"]): r["seconds_per_video"] for r in step_rows}
    per_stack = segments  # stacks per video
    tvl1 = step_s[("two_stream", "tvl1")] / per_stack
    motion = step_s[("hts", "motionnet")] / per_stack
    stored = tvl1 + (step_s[("two_stream", "flow_jpeg_write")] + step_s[("two_stream", "flow_jpeg_read")]) / per_stack
    hidden = motion + step_s[("hts", "flow_to_cnn")] / per_stack
    return {
        "label": label, "resolution": size, "segments": segments, "crops": 1, "stack_length": stack_length,
        "frames_per_video": frames_per_video, "rgbdiff_length": rgbdiff_length, "batch_videos": videos,
        "network_batch": videos * segments,
        "num_classes": num_classes, "vgg_width": vgg_width, "motion_width": motion_width,
        "vgg_batch_norm": vgg_batch_norm, "repeats": repeats, "torch_threads": torch.get_num_threads(),
        "opencv_threads": threads, "device": str(device), "precision": "fp32" if precision is None else precision.name,
        "rows": rows, "steps": step_rows,
        "flow_storage_bytes_per_video": float(np.median(storage)) / videos if storage else 0.0,
        "flow_stage": {"tvl1_s_per_stack": tvl1, "motionnet_s_per_stack": motion,
                       "motionnet_speedup": tvl1 / motion if motion > 0 else float("inf"),
                       "tvl1_with_storage_s_per_stack": stored, "motionnet_with_normalisation_s_per_stack": hidden,
                       "speedup_with_storage": stored / hidden if hidden > 0 else float("inf")},
        "flow_per_field": flow_field_ratio(steps["two_stream"], steps["hts"], videos * segments * (stack_length - 1),
                                           seed),
        "htsc_over_hts": ratio,
        "two_stream_fusion_flow": "two-stream's flow stage of the same round, its seconds counted" if share_flow
                                  else "its own TV-L1, JPEG write and read",
        "tclsta_flow": "two-stream's flow stage of the same round, its seconds counted" if share_flow
                       else "its own TV-L1, JPEG write and read",
        "ratios": {"hts_over_two_stream": fps["hts"] / fps["two_stream"],
                   "htsc_over_two_stream": fps["htsc"] / fps["two_stream"],
                   "htsc_over_hts": fps["htsc"] / fps["hts"],
                   "hts_over_tsn_rgb_diff": fps["hts"] / fps["tsn_rgb_diff"]},
    }
