"""Smoke tests of the training chapters (03 phase 1, 04 phase 2) under papermill with the tiny profile's
parameters on a tiny synthetic export, plus unit tests of the next-box error, TensorBoard reading and reuse."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.records import load_figures
from trackssm_lib.report import PROJECT_ROOT, load_profile

NOTEBOOKS = PROJECT_ROOT / "notebooks"
TINY = PROJECT_ROOT / "configs" / "report_tiny.yaml"
PHASE1 = PROJECT_ROOT / "configs" / "nuscenes_phase1.yaml"
FAST = ["batch_size=2", "max_train_batches=2", "val_batch_size=4", "max_val_batches=1", "num_queries=16",
        "pretrain_epochs=1", "pretrain_batch_size=32", "pretrain_max_batches=1", "warmup_epochs=1",
        "progress=false", "num_threads=2", "backend=torch", "device=cpu", "epochs=1"]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    """2 synthetic v1.0-mini scenes (mini_train and mini_val) exported for 2 cameras."""
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("nbtrain")
    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", cameras=["CAM_FRONT", "CAM_BACK"], progress=False)
    return tmp / "export"


def run_notebook(name: str, out: Path, **params) -> dict:
    import papermill

    prof = load_profile(TINY)
    parameters = {**prof["parameters"][name], "profile": str(TINY), **params, "output_dir": str(out)}
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                               parameters=parameters, kernel_name="python3", progress_bar=False,
                               cwd=str(PROJECT_ROOT), execution_timeout=300)
    return load_figures(out / f"{name}.json")


def check_prediction(fig: dict) -> None:
    pred = fig["prediction_all"]
    assert set(pred) == {"start", "trained", "constant_velocity"}
    assert fig["models"]["constant_velocity"] == "constant velocity"
    n = {row["n"] for row in pred.values()}
    assert len(n) == 1 and n.pop() > 0  # every model scored on the same samples
    for role, row in pred.items():
        assert 0.0 <= row["mean_iou"] <= 1.0, role
        assert row["mean_center_error_px"] >= 0 and row["median_center_error_px"] >= 0, role
    rows = fig["prediction_rows"]
    assert any(r["model"] == "constant velocity" and r["class_name"] == "all" for r in rows)
    for role in pred:  # per-class counts add up to 'all'
        per_class = [r["n"] for r in rows if r["role"] == role and r["class_name"] != "all"]
        assert sum(per_class) == pred[role]["n"]


@pytest.fixture(scope="module")
def chapters(tiny_export, tmp_path_factory):
    out = tmp_path_factory.mktemp("chapters")
    fig3 = run_notebook("03_phase1_decoder", out, export_dir=str(tiny_export))
    fig4 = run_notebook("04_phase2_full", out, export_dir=str(tiny_export))
    return out, fig3, fig4


def test_phase1_notebook(chapters):
    out, fig, _ = chapters
    assert fig["action"] == "trained"
    assert fig["epochs_run"] >= 1 and fig["stop_reason"] in ("max_epochs", "early_stopped")
    assert all(math.isfinite(v) for v in fig["train_loss"] + fig["val_loss"])
    assert math.isfinite(fig["best_val_loss"]) and fig["best_val_loss"] == min(fig["val_loss"])
    assert fig["tb_epochs"] == list(range(1, fig["last_epoch"] + 1))
    assert fig["lr_groups"] == ["decoder"] and fig["lr_configured"] == {"decoder": 1e-4}
    assert fig["start"].startswith("phase 0")
    # training wrote under the output folder, never into the repository's weights/
    assert Path(fig["training_dir"]) == (out / "training").resolve()
    assert (out / "training" / "weights" / "phase1" / "phase1_decoder_best.pth").is_file()
    assert (out / "training" / "weights" / "phase0" / "phase0_pretrain.pth").is_file()
    check_prediction(fig)


def test_phase2_notebook(chapters):
    out, _, fig = chapters
    assert fig["action"] == "trained" and fig["epochs_run"] >= 1
    assert all(math.isfinite(v) for v in fig["train_loss"] + fig["val_loss"])
    assert fig["lr_groups"] == ["decoder", "encoder"]
    assert fig["lr_configured"] == {"encoder": 1e-5, "decoder": 5e-5}
    assert all(0 < fig["lr_peak"][g] <= fig["lr_configured"][g] * (1 + 1e-6) for g in fig["lr_groups"])
    assert fig["start"] == f"phase 1 checkpoint {out / 'training' / 'weights' / 'phase1' / 'phase1_decoder_best.pth'}"
    assert fig["models"]["start"] == "starting (phase 1 best)"
    check_prediction(fig)


def test_phase1_notebook_rerun_reuses(chapters, tiny_export):
    out, first, _ = chapters
    fig = run_notebook("03_phase1_decoder", out, export_dir=str(tiny_export))
    assert fig["action"] == "reused"
    assert fig["best_val_loss"] == first["best_val_loss"] and fig["val_loss"] == first["val_loss"]
    assert fig["prediction_all"] == first["prediction_all"]


# ---------------------------------------------------------------- library

def constant_velocity_track(n_frames: int = 12) -> np.ndarray:
    """A box moving at constant velocity and growing linearly: (n, 4) normalised cx, cy, w, h."""
    t = np.arange(n_frames, dtype=np.float64)
    return np.stack([0.2 + 0.01 * t, 0.5 - 0.004 * t, 0.05 + 0.001 * t, 0.1 + 0.002 * t], axis=1)


def test_constant_velocity_exact_on_constant_velocity_track():
    from trackssm_lib.data import extract_track_samples
    from trackssm_lib.model_eval import CONSTANT_VELOCITY, next_box_error

    boxes = constant_velocity_track()
    frames = np.arange(1, len(boxes) + 1)
    boxes7, cls = extract_track_samples(frames, np.ones(len(boxes), int), boxes.astype(np.float32),
                                        np.full(len(boxes), 2))
    assert len(boxes7) == len(boxes) - 6
    samples = {"boxes7": boxes7, "class_ids": cls, "width": np.full(len(cls), 1600.0),
               "height": np.full(len(cls), 900.0)}
    rows = next_box_error(samples, {CONSTANT_VELOCITY: None})
    assert [r["class_name"] for r in rows] == ["bus", "all"]
    for r in rows:
        assert r["model"] == CONSTANT_VELOCITY and r["n"] == len(boxes) - 6
        assert r["mean_iou"] == pytest.approx(1.0, abs=1e-4)
        assert r["mean_center_error_px"] == pytest.approx(0.0, abs=0.02)
        assert r["median_center_error_px"] == pytest.approx(0.0, abs=0.02)


def test_box_errors_in_pixels():
    from trackssm_lib.model_eval import box_errors

    target = np.array([[0.5, 0.5, 0.1, 0.2]])
    shifted = np.array([[0.5 + 30 / 1600, 0.5 - 40 / 900, 0.1, 0.2]])  # 30 px right, 40 px up
    iou, err = box_errors(shifted, target, np.array([1600.0]), np.array([900.0]))
    assert err[0] == pytest.approx(50.0)
    w, h = 160.0, 180.0
    assert iou[0] == pytest.approx((w - 30) * (h - 40) / (2 * w * h - (w - 30) * (h - 40)))
    far = np.array([[0.9, 0.9, 0.05, 0.05]])
    iou, _ = box_errors(far, target, np.array([1600.0]), np.array([900.0]))
    assert iou[0] == 0.0
    degenerate = np.array([[0.5, 0.5, -0.1, 0.2]])  # negative predicted width: no overlap, no NaN
    iou, _ = box_errors(degenerate, target, np.array([1600.0]), np.array([900.0]))
    assert iou[0] == 0.0


def test_model_prediction_matches_predict(tiny_export):
    """The batched evaluation gives the model's own predictions (eval mode, no gradients)."""
    import torch

    from trackssm_lib.data import build_condition
    from trackssm_lib.model import TrackSSM
    from trackssm_lib.model_eval import predict_next, split_samples

    samples = split_samples(tiny_export)
    assert samples["split"] == "mini_val" and len(samples["boxes7"]) > 0
    assert set(samples["width"]) == {1600.0} and set(samples["height"]) == {900.0}
    torch.manual_seed(0)
    model = TrackSSM(backend="torch")
    b7 = samples["boxes7"][:50]
    cls = samples["class_ids"][:50]
    got = predict_next(model, b7[:, :6], cls, batch_size=16)
    cond, _ = build_condition(torch.from_numpy(b7))
    want = model.predict(cond, torch.from_numpy(cls)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # batch size changes float sums
    assert model.training  # mode restored


def test_model_reads_the_last_six_boxes(tiny_export):
    """On longer runs the model reads the 6 boxes before the target (the official input); every model of a
    comparison is scored on the same targets; too short samples are refused with the length they need."""
    import torch

    from trackssm_lib.data import build_condition
    from trackssm_lib.model import TrackSSM
    from trackssm_lib.model_eval import constant_velocity, next_box_error, predict_next, split_samples

    torch.manual_seed(0)
    model = TrackSSM(backend="torch")
    samples = split_samples(tiny_export, length=12)
    b12, cls = samples["boxes7"][:40], samples["class_ids"][:40]
    assert b12.shape == (40, 12, 4)
    got = predict_next(model, b12[:, :-1], cls, batch_size=16)
    last7 = torch.from_numpy(np.ascontiguousarray(b12[:, -7:]))
    want = model.predict(build_condition(last7)[0], torch.from_numpy(cls)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(constant_velocity(b12), 2.0 * b12[:, -2] - b12[:, -3])
    rows = next_box_error(samples, {"cv": None, "model": model})
    assert {r["n"] for r in rows if r["class_name"] == "all"} == {len(samples["class_ids"])}
    with pytest.raises(ValueError, match=r"the model needs 6 boxes before the target, got shape \(40, 5, 4\)"):
        predict_next(model, b12[:, -6:-1], cls)


def test_rollout_matches_tracker_history_rule(tiny_export):
    """Long runs start with the official samples; a rollout's first step is the next-box prediction, later steps
    predict from histories that end with the earlier predictions (pred, pred - previous); constant velocity is
    exact on linear motion; the error table has one row per model and step."""
    import torch

    from trackssm_lib.data import build_condition
    from trackssm_lib.model import TrackSSM
    from trackssm_lib.model_eval import rollout, rollout_box_error, split_samples

    runs = split_samples(tiny_export, length=10)
    seven = split_samples(tiny_export)
    assert runs["boxes7"].shape[1:] == (10, 4) and 0 < len(runs["boxes7"]) < len(seven["boxes7"])
    starts = {tuple(b.ravel()) for b in seven["boxes7"]}
    assert all(tuple(b[:7].ravel()) in starts for b in runs["boxes7"][:20])
    torch.manual_seed(0)
    model = TrackSSM(backend="torch")
    hist, cls = runs["boxes7"][:8, :6].astype(np.float64), runs["class_ids"][:8]
    pred = rollout(model, hist, cls, steps=3)
    assert pred.shape == (8, 3, 4)
    window = np.concatenate([hist[:, 1:], pred[:, :1]], axis=1)
    cond, _ = build_condition(torch.from_numpy(np.concatenate([window, window[:, -1:]], 1).astype(np.float32)))
    np.testing.assert_allclose(cond[:, -1, 4:].numpy(), pred[:, 0] - hist[:, -1], atol=1e-6)
    want = model.predict(cond, torch.from_numpy(cls)).numpy()
    np.testing.assert_allclose(pred[:, 1], want, rtol=1e-4, atol=1e-5)
    line = 0.3 + 0.01 * np.arange(9)[None, :, None] * np.array([1.0, 0.5, 0.2, 0.1])
    np.testing.assert_allclose(rollout(None, line[:, :6], steps=3), line[:, 6:9], atol=1e-12)
    rows = rollout_box_error(runs, {"cv": None, "model": model}, steps=4)
    assert [(r["model"], r["step"]) for r in rows] == [(m, k) for m in ("cv", "model") for k in (1, 2, 3, 4)]
    assert all(0.0 <= r["mean_iou"] <= 1.0 and r["n"] == len(runs["class_ids"]) for r in rows)
    with pytest.raises(ValueError, match="5 rollout steps need runs of 11 boxes"):
        rollout_box_error(runs, {"cv": None}, steps=5)


def test_train_or_reuse_and_scalars(tiny_export, tmp_path):
    from trackssm_lib.model_eval import read_scalars, train_or_reuse

    overrides = FAST + [f"output_dir={tmp_path}", "stop_after_epoch=1", "epochs=2"]
    first = train_or_reuse(PHASE1, tiny_export, overrides, log=None)
    assert first["action"] == "trained" and first["stop_reason"] == "stop_after_epoch"
    second = train_or_reuse(PHASE1, tiny_export, overrides, log=None)  # not finished: resumed
    assert second["action"] == "resumed" and second["last_epoch"] == 2 and second["stop_reason"] == "max_epochs"
    third = train_or_reuse(PHASE1, tiny_export, overrides + ["progress=true"], log=None)  # runtime key only
    assert third["action"] == "reused" and third["best_val_loss"] == second["best_val_loss"]
    scalars = read_scalars(third["tensorboard"])
    assert list(scalars["loss/val"]["step"]) == [1, 2]
    assert np.isfinite(scalars["loss/train"]["value"]).all()
    moved = tmp_path.parent / f"{tmp_path.name}-moved"  # the training folder moved (a moved checkout)
    shutil.copytree(tmp_path, moved)
    again = train_or_reuse(PHASE1, tiny_export, FAST + [f"output_dir={moved}", "stop_after_epoch=1", "epochs=2"],
                           log=None)
    assert again["action"] == "reused" and again["best_val_loss"] == second["best_val_loss"]
    for key in ("best_checkpoint", "last_checkpoint", "tensorboard", "log_file"):
        assert Path(again[key]).is_relative_to(moved) and Path(again[key]).exists(), key
    assert list(read_scalars(again["tensorboard"])["loss/val"]["step"]) == [1, 2]
    assert f"{tmp_path}/" not in repr(again), "no path of the old folder is left"
    changed = train_or_reuse(PHASE1, tiny_export, overrides + ["lr=2.0e-4"], log=None)  # other config: retrain
    assert changed["action"] == "trained"
    assert list(read_scalars(changed["tensorboard"])["loss/val"]["step"]) == [1]
