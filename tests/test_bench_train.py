"""`htsc bench train` and the precision policy: FLOPs against a hand count, the JSON schema on the smoke
profile, autocast on/off by config with an fp32 fallback on CPUs without native bf16, losses in fp32."""
import json

import pytest
import torch
from torch import nn

from htsc_core.bench.train import count_step_flops, summarise_run, train_benchmark
from htsc_core.config import from_params
from htsc_core import precision
from htsc_core.train.engine import Trainer, precision_policy, to_channels_last


# ----------------------------------------------------------------------------- FLOPs
def test_flop_count_matches_hand_count_for_conv_plus_linear():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, kernel_size=3)  # 1x1x4x4 -> 1x2x2x2
    lin = nn.Linear(8, 3)
    x = torch.rand(1, 1, 4, 4)  # needs no gradient: conv backward computes the weight gradient only

    def fwd_bwd():
        lin(conv(x).flatten(1)).sum().backward()

    # 2 FLOPs per multiply-add. Forward: conv 8 outputs x 9 taps, linear 8 x 3.
    conv_fwd, lin_fwd = 2 * 8 * 9, 2 * 8 * 3
    # Backward: conv weight gradient (same MACs as the forward), linear input and weight gradients.
    hand = conv_fwd + lin_fwd + conv_fwd + 2 * lin_fwd
    assert hand == 432
    assert count_step_flops(fwd_bwd) == hand


# ----------------------------------------------------------------------------- bench JSON
def test_bench_train_json_schema_on_smoke_profile(tmp_path):
    cfg = from_params(profile="smoke", data_root=str(tmp_path / "absent"), results_dir=str(tmp_path / "res"))
    res = train_benchmark(cfg, stages=("spatial", "motion", "cln"), repeats=1, warmup=0)
    path = tmp_path / "res" / "metrics" / "bench_train.json"
    assert res["path"] == str(path)
    saved = json.loads(path.read_text())
    assert set(saved["stages"]) == {"spatial", "motion", "cln"}
    for stage, row in saved["stages"].items():
        for key in ("fp32_ms_per_step", "bf16_ms_per_step", "speedup", "gflops_per_step", "gflops_per_s_fp32",
                    "gflops_per_s_bf16", "batch_size"):
            assert isinstance(row[key], (int, float)) and row[key] > 0, (stage, key)
        assert row["speedup"] == pytest.approx(row["fp32_ms_per_step"] / row["bf16_ms_per_step"])
        assert row["gflops_per_s_fp32"] == pytest.approx(row["gflops_per_step"] / row["fp32_ms_per_step"] * 1e3)
        assert row["loader_ms_per_batch"] is None and row["loader_note"]  # no dataset: null + the reason
        assert set(row["ms_per_step"]) == {"fp32", "fp32_channels_last", "bf16", "bf16_channels_last"}
        assert row["batch_size"] == cfg.batch_size
        assert row["speedup_ci95"] is None  # one repeat: no interval (stats.ratio_ci needs 5)
    # the flow losses' own cost: timed for MotionNet, absent for the classifiers and the CLN
    assert saved["stages"]["motion"]["flow_loss_ms_per_step"] > 0
    assert saved["stages"]["spatial"]["flow_loss_ms_per_step"] is None
    assert saved["stages"]["cln"]["flow_loss_ms_per_step"] is None
    # MotionNet pre-training: one stack per video, as the trainer
    assert saved["stages"]["motion"]["segments"] == 1 and saved["stages"]["spatial"]["segments"] == cfg.num_segments
    for key in ("cpu_model", "cpu_count", "torch", "bf16_native_cpu", "torch_threads"):
        assert key in saved["machine"]
    # VGG16 does more maths per step than the CLN on pooled features
    assert saved["stages"]["spatial"]["gflops_per_step"] > saved["stages"]["cln"]["gflops_per_step"]


def test_summarise_run_reads_the_last_contiguous_run(tmp_path):
    lines = [{"epoch": 1, "seconds": 9.0, "val_accuracy": 0.1, "val_count": 10},  # an earlier run
             {"epoch": 1, "seconds": 2.0, "val_accuracy": 0.4, "val_count": 10, "precision": "bf16"},
             {"epoch": 2, "seconds": 4.0, "val_accuracy": 0.5, "val_count": 10, "precision": "bf16"}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    s = summarise_run(tmp_path)
    assert s["epochs"] == 2 and s["val_accuracy"] == 0.5 and s["best_val_accuracy"] == 0.5
    assert s["epoch_seconds_median"] == 3.0 and s["precision"] == "bf16"
    lo, hi = s["val_accuracy_ci95"]  # Wilson interval of 5/10: 0.2366 .. 0.7634
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)


# ----------------------------------------------------------------------------- precision policy
def test_amp_config_modes_and_old_boolean_configs():
    assert from_params().amp == "auto"
    assert from_params(amp=True).amp == "auto" and from_params(amp=False).amp == "off"
    with pytest.raises(ValueError, match="amp"):
        from_params(amp="fp8")


@pytest.mark.parametrize("native", [True, False])
def test_policy_follows_cpu_bf16_support_and_config(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    auto = precision_policy("cpu", from_params())
    assert auto.autocast_dtype == (torch.bfloat16 if native else None)  # fp32 fallback without native bf16
    assert precision_policy("cpu", "off").autocast_dtype is None
    assert precision_policy("cpu", False).autocast_dtype is None
    assert precision_policy("cpu", "bf16").autocast_dtype == torch.bfloat16  # forced, even when emulated
    assert precision_policy("cuda", "auto").autocast_dtype == torch.bfloat16
    assert precision_policy("cuda", "off").autocast_dtype is None


def test_cpu_bf16_detection_reads_cpuinfo_flags(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    real_path = precision.Path

    def with_flags(flags):
        fake.write_text(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {flags}\n")
        precision.cpu_hardware_bf16.cache_clear()
        return precision.cpu_has_native_bf16()

    monkeypatch.setattr(precision, "Path", lambda p: real_path(fake) if p == "/proc/cpuinfo" else real_path(p))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv(precision.FP32_SWITCH, raising=False)
    try:
        assert with_flags("fpu sse avx2 avx512f avx512_bf16") is True
        assert with_flags("fpu sse avx2 avx512f avx512bw") is False
        assert with_flags("fpu amx_tile amx_bf16") is True
        # the documented switch: a bf16 CPU answers as one without, and "auto" runs fp32
        monkeypatch.setenv(precision.FP32_SWITCH, "1")
        assert with_flags("fpu amx_tile amx_bf16") is False and precision.cpu_hardware_bf16() is True
        assert precision_policy("cpu", "auto").autocast_dtype is None
        assert precision_policy("cpu", "bf16").autocast_dtype == torch.bfloat16  # an explicit choice still wins
        info = precision.machine_info()
        assert info["bf16_native_cpu"] is False and info["bf16_hardware_cpu"] is True and info["fp32_forced"]
        monkeypatch.setenv(precision.FP32_SWITCH, "0")
        assert with_flags("fpu amx_tile amx_bf16") is True
    finally:
        precision.cpu_hardware_bf16.cache_clear()


def _trainer_with_probe(tmp_path, amp):
    seen = {}

    def step(m, b):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        out = m(b["x"])
        seen["conv_dtype"] = out.dtype
        seen["layout_cl"] = out.is_contiguous(memory_format=torch.channels_last)
        return out.float().mean(), {"count": 1}

    model = nn.Conv2d(3, 4, 3, padding=1)
    t = Trainer(tmp_path / str(amp), "a", model, torch.optim.SGD(model.parameters(), lr=0.1), step,
                lambda e: [{"x": torch.rand(2, 3, 8, 8)}], 1, device="cpu", amp=amp, monitor="loss")
    t.fit()
    log = json.loads((tmp_path / str(amp) / "log.jsonl").read_text().splitlines()[0])
    return seen, log


def test_trainer_runs_bf16_or_fp32_by_config(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    seen, log = _trainer_with_probe(tmp_path, "auto")
    assert seen["autocast"] and seen["conv_dtype"] == torch.bfloat16 and log["precision"] == "bf16"
    assert seen["layout_cl"] and log["channels_last"]
    seen, log = _trainer_with_probe(tmp_path, "off")
    assert not seen["autocast"] and seen["conv_dtype"] == torch.float32 and log["precision"] == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # a CPU without bf16: fp32
    seen, log = _trainer_with_probe(tmp_path / "no_bf16", "auto")
    assert not seen["autocast"] and seen["conv_dtype"] == torch.float32


def test_channels_last_leaves_5d_buffers_and_matches_contiguous():
    from htsc_core.models.motionnet import MotionNet

    torch.manual_seed(0)
    ref = MotionNet(3, 1 / 16)
    cl = to_channels_last(MotionNet(3, 1 / 16))
    cl.load_state_dict(ref.state_dict())
    assert cl.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert cl.input_mean.dim() == 5
    x = torch.rand(2, 3, 3, 32, 32)
    for a, b in zip(ref(x), cl(x)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_motion_losses_and_flow_input_stay_fp32_under_cpu_autocast():
    """The MotionNet step under the trainer's CPU bf16 policy: convs in bf16, losses and flow normalisation fp32."""
    from htsc_core.models.flow_losses import MotionNetLoss
    from htsc_core.models.motionnet import MotionNet
    from htsc_core.models.temporal import flow_to_cnn_input

    torch.manual_seed(0)
    net = to_channels_last(MotionNet(3, 1 / 16))
    stack = torch.rand(2, 3, 3, 32, 32)
    ref_loss, _ = MotionNetLoss()(stack, [f.detach() for f in net(stack)])
    with precision_policy("cpu", "bf16").autocast(torch.device("cpu")):
        flows = net(stack)
        loss, parts = MotionNetLoss()(stack, flows)
        cnn_in = flow_to_cnn_input(flows[-1], 32)
    assert flows[-1].dtype == torch.bfloat16  # the network itself ran in bf16
    assert loss.dtype == torch.float32 and all(p.dtype == torch.float32 for p in parts.values())
    assert cnn_in.dtype == torch.float32
    loss.backward()
    assert net.conv1[0].weight.grad.dtype == torch.float32  # master weights and their gradients stay fp32
    assert loss.item() == pytest.approx(ref_loss.item(), rel=5e-2)  # only the bf16 network outputs differ


def test_precision_comparison_trains_both_and_records_non_inferiority_claims(tmp_path, smoke_set):
    # smoke-size: one epoch per run on the smoke set; the claims must be well-formed verdicts
    from htsc_core.bench.train import precision_comparison

    root = smoke_set
    cfg = from_params({"profile": "smoke", "data_root": str(root), "runs_dir": str(tmp_path / "runs"),
                       "results_dir": str(tmp_path / "results")})
    res = precision_comparison(cfg, stages=("spatial", "motion"), epochs=1, flow_videos=4)
    # a later run of one stage with two seeds keeps the other stage's record
    precision_comparison(cfg, stages=("spatial",), epochs=1, seeds=2)
    saved = json.loads((tmp_path / "results" / "metrics" / "bf16_vs_fp32.json").read_text())
    assert saved["stages"]["spatial"]["seeds"] == 2 and len(saved["stages"]["spatial"]["seed_spread"]["bf16"]) == 2
    assert [r["seed"] for r in saved["stages"]["spatial"]["runs"]["fp32"]] == [0, 1]
    for stage, kind in (("spatial", "at_least"), ("motion", "at_most")):
        r = saved["stages"][stage]
        assert r["runs"]["fp32"][0]["precision"] == "fp32" and r["runs"]["bf16"][0]["precision"] == "bf16"
        assert r["claim"]["kind"] == kind and r["claim"]["verdict"] in ("holds", "reversed", "not resolved")
        assert r["claim"]["margin"] == 0.03
    assert len(saved["stages"]["motion"]["test"]["bf16"][0]["per_video_epe"]) == 4
    n = len(saved["stages"]["spatial"]["test"]["fp32"][0]["per_video_correct"])
    assert n == saved["stages"]["spatial"]["claim"]["n"] > 0
    with pytest.raises(ValueError, match="not supported"):
        precision_comparison(cfg, stages=("tvl1",))
    assert res["path"].endswith("bf16_vs_fp32.json")


def test_importing_htsc_core_enlarges_onednn_primitive_cache_unless_the_user_set_it():
    import os
    import subprocess
    import sys

    code = "import os, htsc_core; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "4096"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "100"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "100"
