"""The validation and scoring passes of each stage in ``htsc plan`` (issue 37): their FLOPs, share of the training,
and peak host and device memory, with the live activations of a forward counted on the meta device
(:class:`LiveBytes`). :mod:`htsc_core.plan` calls :func:`passes` per stage; its docstring says how each figure is
derived."""
from __future__ import annotations

class LiveBytes:
    """Peak bytes of the tensors a forward creates and holds at once (fp32 on the meta device: shapes only), for the
    scoring memory: each new storage counts from the op that makes it until its tensor is freed. Inputs and
    parameters, made before, are not counted. Checked against the resident memory a CPU forward adds
    (tests/test_bounded_views.py)."""

    def __init__(self, *known):
        """``known``: modules and tensors made before (parameters, inputs), whose storages a view op may return."""
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        outer = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                import torch
                from torch.utils import _pytree

                out = func(*args, **(kwargs or {}))
                for t in _pytree.tree_leaves(out):
                    if isinstance(t, torch.Tensor) and t._base is None:
                        outer._add(t)
                return out

        self.live = self.peak = 0
        self._mode = _Mode()
        tensors = [t for k in known for t in ([*k.parameters(), *k.buffers()] if isinstance(k, torch.nn.Module)
                                              else [k])]
        self._seen = {t.untyped_storage()._cdata for t in tensors}  # storages not made by the forward

    def _add(self, t) -> None:
        import weakref

        key = t.untyped_storage()._cdata
        if key in self._seen:  # a view of a parameter, an input or an earlier output (same storage)
            return
        n = t.untyped_storage().nbytes()
        self._seen.add(key)
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(t, self._drop, key, n)

    def _drop(self, key: int, n: int) -> None:
        self._seen.discard(key)
        self.live -= n

    def __enter__(self) -> LiveBytes:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


# device memory of each GPU class, GB (the 80 GB A100 / H100 SXM; vendors' spec sheets)
GPU_MEMORY_GB = {"V100": 32.0, "T4": 16.0, "A10": 24.0, "L4": 24.0, "A100": 80.0, "H100": 80.0, "H200": 141.0}
# bytes a view's input holds on its way (data/dataset.py): uint8 frames in test-mode items, float32 flow / differences
# and every training item; each process's loader has workers x 2 (prefetch) + 1 batches in flight
PREFETCH = 2


def _view_input_bytes(cfg, stage: str, training: bool) -> int:
    """Bytes of one view's input as the loader hands it over (``training``: float32 frames; else uint8)."""
    from htsc_core.train.streams import clip_config

    c = clip_config(cfg, stage)
    px, frame = c.image_size ** 2, 4 if training else 1
    return {"spatial": 3 * px * frame, "motion": c.stack_length * 3 * px * frame,
            "temporal": c.stack_length * 3 * px * frame, "c3d": c.stack_length * 3 * px * frame,
            "tvl1": 2 * c.num_flows * px * 4, "rgbdiff": 3 * (c.rgbdiff_length - 1) * px * 4,
            "conv_fusion": 3 * px * frame + 2 * c.num_flows * px * 4}.get(stage, 0)


def passes(cfg, stage: str, n: dict, n_val: int, scored_videos: int, s: dict, rate: float) -> dict:
    """The validation pass of each epoch and the test-protocol scoring pass of ``stage``: views, FLOPs, and peak
    host and device memory (docs/DESIGN.md section 4: eval batches of ``eval_videos_per_batch`` videos, forwards of
    at most ``views_per_forward`` views; conv fusion and TCLSTA take a whole video a forward)."""
    from htsc_core.data.dataset import eval_videos_per_batch
    from htsc_core.train.stages import stage_data_config, validation_config

    workers = int(cfg.num_workers)
    in_flight = workers * PREFETCH + 1
    per_view_flops, per_view_peak = n["forward_flops_per_view"], n["inference_peak_bytes_per_view"]
    whole_video = stage in ("conv_fusion", "tclsta", "cln")

    def one(views: int, videos: int) -> dict:
        batch_videos = eval_videos_per_batch(cfg, views)
        chunk = views if whole_video else min(views, int(cfg.views_per_forward))
        if stage in ("cln", "tclsta"):  # cached features in memory a batch at a time (train/cln.py, train/tclsta.py)
            host = device_in = 0
        else:
            host = in_flight * batch_videos * views * _view_input_bytes(cfg, stage, False)
            device_in = batch_videos * views * _view_input_bytes(cfg, stage, False)
        device = (n["param_bytes"] + device_in + chunk * per_view_peak
                  + chunk * _view_input_bytes(cfg, stage, True))  # + the chunk made float
        flops = videos * views * per_view_flops
        return {"views_per_video": views, "videos": videos, "videos_per_batch": batch_videos,
                "views_per_forward": chunk, "flops": flops, "gpu_hours": flops / rate / 3600,
                "host_bytes": host, "device_bytes": device}

    test_views = cfg.test_segments * cfg.test_crops
    v = validation_config(stage_data_config(cfg, stage))
    # the CLN and TCLSTA validate on the cached features of the test protocol (a video's S segments / S x C maps)
    val_views = {"cln": 1, "tclsta": test_views}.get(stage, v.test_segments * v.test_crops)
    val = one(val_views, n_val)
    train_flops_epoch = n["flops_per_step"] * s["steps_per_epoch"]
    val["flops_per_epoch"] = val["flops"]
    val["flops"] = val["flops_per_epoch"] * s["epochs"]
    val["gpu_hours"] = val["flops"] / rate / 3600
    val["share_of_training"] = val["flops_per_epoch"] / max(train_flops_epoch, 1)
    scoring = one(test_views if stage != "cln" else 1, scored_videos)
    batch_views = s["batch_size"] * (1 if stage in ("c3d", "motion") else cfg.num_segments)
    train_in = batch_views * _view_input_bytes(cfg, stage, True)
    return {"validation": val, "scoring": scoring, "train_input_bytes": train_in,
            "train_host_bytes": in_flight * train_in}
