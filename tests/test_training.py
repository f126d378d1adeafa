"""Training phases 1/2 on a tiny synthetic export: freezing, groups, early stopping, resume, errors, DDP."""
from __future__ import annotations

import math

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trackssm_lib.model import CheckpointError, read_checkpoint
from trackssm_lib.training import ConfigError, TrainingError, load_config, lr_factor, main, train_main

REPO = Path(__file__).resolve().parents[1]
PHASE1 = REPO / "configs" / "nuscenes_phase1.yaml"
PHASE2 = REPO / "configs" / "nuscenes_phase2.yaml"
TINY = ["batch_size=2", "max_train_batches=2", "val_batch_size=4", "max_val_batches=1", "num_queries=16",
        "pretrain_epochs=1", "pretrain_batch_size=32", "pretrain_max_batches=2", "warmup_epochs=1",
        "progress=false", "num_threads=2", "backend=torch", "device=cpu"]


@pytest.fixture(scope="module")
def export_root(tmp_path_factory) -> Path:
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("train")
    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", cameras=["CAM_FRONT", "CAM_BACK"], progress=False)
    return tmp / "export"


def run(config: Path, data: Path, out: Path, *extra: str, resume: bool = False, overwrite: bool = False) -> dict:
    return train_main(config, data=data, overrides=TINY + [f"output_dir={out}", *extra], resume=resume,
                      overwrite=overwrite)


def state(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path).state_dict


def extra(path: Path) -> dict:
    return read_checkpoint(path).meta["extra"]


@pytest.fixture(scope="module")
def phase1(export_root, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("p1")
    return out, run(PHASE1, export_root, out, "epochs=3")


# ------------------------------------------------------------------------------------------------ phase 1
def test_phase1_freezes_encoder_and_writes_outputs(phase1):
    out, summary = phase1
    assert summary["stop_reason"] == "max_epochs" and summary["epochs_run"] == 3
    assert summary["start"].startswith("phase 0: fallback: pedestrian tracks")
    start = state(out / "weights" / "phase0" / "phase0_pretrain.pth")
    for name in ("phase1_decoder_best.pth", "phase1_decoder_last.pth"):
        trained = state(out / "weights" / "phase1" / name)
        enc = [k for k in start if k.startswith("encoder.")]
        assert len(enc) == 6 * 10 + 2
        assert all(torch.equal(start[k], trained[k]) for k in enc)  # bit-identical
        assert any(not torch.equal(start[k], trained[k]) for k in trained if k.startswith("ssm_decoder."))
        assert not torch.equal(start["class_embedding.weight"], trained["class_embedding.weight"])
    last = extra(out / "weights" / "phase1" / "phase1_decoder_last.pth")
    assert last["epoch"] == 3 and set(last["rng"]) >= {"python", "numpy", "torch"}
    assert last["config"]["phase"] == 1 and "optimizer" in last and "scheduler" in last
    assert [g["name"] for g in last["optimizer"]["param_groups"]] == ["decoder"]
    log = (out / "logs" / "phase1_training.log").read_text()
    assert "phase 1 epoch 3/3" in log and "phase 0: pretraining" in log
    assert list((out / "runs" / "phase1_nuscenes").glob("events.out.tfevents.*"))


def test_resume_equals_uninterrupted(phase1, export_root, tmp_path):
    out_a, _ = phase1
    part = run(PHASE1, export_root, tmp_path, "epochs=3", "stop_after_epoch=2")
    assert part["stop_reason"] == "stop_after_epoch" and part["last_epoch"] == 2
    rest = run(PHASE1, export_root, tmp_path, "epochs=3", resume=True)
    assert rest["epochs_run"] == 1 and rest["last_epoch"] == 3
    assert rest["start"].startswith("resumed from")
    a = state(out_a / "weights" / "phase1" / "phase1_decoder_last.pth")
    b = state(tmp_path / "weights" / "phase1" / "phase1_decoder_last.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ea = extra(out_a / "weights" / "phase1" / "phase1_decoder_last.pth")
    eb = extra(tmp_path / "weights" / "phase1" / "phase1_decoder_last.pth")
    assert [h["val_loss"] for h in ea["history"]] == [h["val_loss"] for h in eb["history"]]
    # nothing left to do: resuming a finished run returns at once
    again = run(PHASE1, export_root, tmp_path, "epochs=3", resume=True)
    assert again["epochs_run"] == 0 and again["stop_reason"] == "max_epochs"


def test_rerun_without_resume_refuses_to_overwrite(phase1, export_root, tmp_path, capsys):
    """A finished run's checkpoints are never replaced by a plain rerun: the error (exit 2) names the checkpoint and
    both flags; --overwrite starts a new run in its place; --resume and --overwrite exclude each other."""
    import shutil

    out, _ = phase1
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "weights").rglob("*.pth")}
    with pytest.raises(FileExistsError, match=r"phase1_decoder_last\.pth; pass --resume .* or --overwrite"):
        run(PHASE1, export_root, out, "epochs=3")
    args = ["--config", str(PHASE1), "--data", str(export_root), "--set", *TINY, f"output_dir={out}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "phase1_decoder_last.pth" in err and "--resume" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert {p: p.stat().st_mtime_ns for p in (out / "weights").rglob("*.pth")} == mtimes
    with pytest.raises(SystemExit) as exc:
        main([*args, "--resume", "--overwrite"])
    assert exc.value.code == 2
    # a best checkpoint alone (the run stopped before writing its last) is an earlier run too
    best1 = out / "weights" / "phase1" / "phase1_decoder_best.pth"
    (tmp_path / "weights" / "phase1").mkdir(parents=True)
    shutil.copy(best1, tmp_path / "weights" / "phase1" / best1.name)
    with pytest.raises(FileExistsError, match=r"phase1_decoder_best\.pth"):
        run(PHASE1, export_root, tmp_path, "epochs=1", f"init_checkpoint={best1}")
    fresh = run(PHASE1, export_root, tmp_path, "epochs=1", f"init_checkpoint={best1}", overwrite=True)
    assert fresh["epochs_run"] == 1 and fresh["start"] == f"init_checkpoint {best1}"
    assert extra(tmp_path / "weights" / "phase1" / "phase1_decoder_last.pth")["epoch"] == 1
    assert "overwrite: removed the earlier run's" in (tmp_path / "logs" / "phase1_training.log").read_text()


def test_resume_applies_or_refuses_each_changed_setting(phase1, export_root, tmp_path):
    """On --resume a changed setting is applied (epochs) or refused with the key, both values and the way out (lr,
    seed, a per-epoch cap, other data); the export is compared by identity, so a moved copy resumes."""
    import json
    import shutil

    out, _ = phase1
    shutil.copytree(out / "weights", tmp_path / "weights")
    for change, old, new in (("lr=5e-4", "0.0001", "0.0005"), ("seed=1", "0", "1"),
                             ("max_train_batches=3", "2", "3")):
        key = change.split("=")[0]
        with pytest.raises(ConfigError, match=rf"{key}: {old} in the checkpoint, {new} now.*--overwrite or another "
                                              rf"output_dir"):
            run(PHASE1, export_root, tmp_path, "epochs=3", change, resume=True)
    moved = tmp_path / "moved_export"
    shutil.copytree(export_root, moved)
    same = run(PHASE1, moved, tmp_path, "epochs=3", resume=True)
    assert same["epochs_run"] == 0 and same["stop_reason"] == "max_epochs"
    manifest = json.loads((moved / "export.json").read_text())
    (moved / "export.json").write_text(json.dumps({**manifest, "interp": "linear2d"}))
    with pytest.raises(ConfigError, match=r"--resume: .*other settings \(data: '"):
        run(PHASE1, moved, tmp_path, "epochs=3", resume=True)
    longer = run(PHASE1, export_root, tmp_path, "epochs=4", resume=True)
    assert longer["epochs_run"] == 1 and longer["last_epoch"] == 4


def test_set_errors_name_the_key_and_what_it_accepts(export_root, tmp_path, capsys):
    """Every bad --set value names the key and the accepted type or values, before any data is read."""
    cases = {"max_train_batches=abc": r"'max_train_batches' expects int >= 1 or null, got 'abc'",
             "max_train_batches=0": r"'max_train_batches' must be >= 1, got 0",
             "device=gpu": r"'device' must be auto, cpu, cuda or cuda:N \(N: a GPU index\), got 'gpu'",
             "backend=fast": r"'backend' must be one of auto, torch, mamba_ssm, got 'fast'",
             "epochs=null": r"'epochs' expects int >= 1, got null",
             "amp=1": r"'amp' expects bool \(true or false\), got 1",
             "phase=3": r"'phase' must be one of 1, 2, got 3"}
    for item, message in cases.items():
        with pytest.raises(ConfigError, match=rf"--set '{item}': config key {message}"):
            load_config(PHASE1, [item])
    assert load_config(PHASE1, ["output_dir=2024"])["output_dir"] == "2024"  # a folder named by a number
    assert load_config(PHASE1, ["device=cuda:1", "grad_clip=null"])["grad_clip"] is None
    for item in ("device=gpu", "max_train_batches=abc"):
        assert main(["--config", str(PHASE1), "--data", str(export_root), "--set", item]) == 2
        err = capsys.readouterr().err
        assert item.split("=")[0] in err and "Traceback" not in err
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"'device' is 'cuda', but torch sees no CUDA device"):
            run(PHASE1, export_root, tmp_path, "device=cuda")


# ------------------------------------------------------------------------------------------------ phase 2
def test_phase2_two_groups_logged_to_tensorboard(phase1, export_root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    summary = run(PHASE2, export_root, tmp_path, "epochs=2", "warmup_epochs=0", "decay_start=1.0",
                  f"phase1_checkpoint={best1}")
    assert summary["start"] == f"phase 1 checkpoint {best1}"
    last = extra(tmp_path / "weights" / "phase2" / "phase2_full_last.pth")
    groups = last["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["encoder", "decoder"]
    assert [g["lr"] for g in groups] == [1e-5, 5e-5]
    acc = EventAccumulator(str(tmp_path / "runs" / "phase2_nuscenes"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/train", "loss/val", "lr/encoder", "lr/decoder"} <= tags
    assert [e.value for e in acc.Scalars("lr/encoder")] == pytest.approx([1e-5, 1e-5])
    assert [e.value for e in acc.Scalars("lr/decoder")] == pytest.approx([5e-5, 5e-5])
    assert [e.step for e in acc.Scalars("loss/val")] == [1, 2]
    # everything trained: the encoder moved
    p1, p2 = state(best1), state(tmp_path / "weights" / "phase2" / "phase2_full_last.pth")
    assert not torch.equal(p1["encoder.mamba_net.layers.0.mixer.in_proj.weight"],
                           p2["encoder.mamba_net.layers.0.mixer.in_proj.weight"])


def test_early_stopping_stops(phase1, export_root, tmp_path):
    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    summary = run(PHASE2, export_root, tmp_path, "epochs=6", "patience=1", "encoder_lr=0", "decoder_lr=0",
                  f"phase1_checkpoint={best1}")
    assert summary["stop_reason"] == "early_stopped"
    assert summary["epochs_run"] == 2 and summary["best_epoch"] == 1
    assert extra(tmp_path / "weights" / "phase2" / "phase2_full_last.pth")["early_stopped"]
    # a larger patience is applied on resume: the run continues until 3 bad epochs in a row
    args = ["epochs=6", "encoder_lr=0", "decoder_lr=0", f"phase1_checkpoint={best1}"]
    more = run(PHASE2, export_root, tmp_path, *args, "patience=3", resume=True)
    assert more["stop_reason"] == "early_stopped" and more["epochs_run"] == 2 and more["last_epoch"] == 4
    # a learning rate is not: refused by name with both values, nothing written
    before = (tmp_path / "weights" / "phase2" / "phase2_full_last.pth").stat().st_mtime_ns
    with pytest.raises(ConfigError, match=r"decoder_lr: 0\.0 in the checkpoint, 0\.001 now.*--overwrite"):
        run(PHASE2, export_root, tmp_path, "epochs=6", "encoder_lr=0", "decoder_lr=1e-3", "patience=6",
            f"phase1_checkpoint={best1}", resume=True)
    assert (tmp_path / "weights" / "phase2" / "phase2_full_last.pth").stat().st_mtime_ns == before


def test_nan_loss_stops_and_keeps_last_good_checkpoint(phase1, export_root, tmp_path):
    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    # 2 steps per epoch: step 3 is the first step of epoch 2
    with pytest.raises(TrainingError, match=r"non-finite training loss .* epoch 2.*last good checkpoint is kept"):
        run(PHASE2, export_root, tmp_path, "epochs=3", "fault_nan_at_step=3", f"phase1_checkpoint={best1}")
    last = tmp_path / "weights" / "phase2" / "phase2_full_last.pth"
    assert extra(last)["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state(last).values())


def test_giou_training(phase1, export_root, tmp_path):
    """giou_weight > 0 trains and validates on the loss with the 1 - GIoU term (larger than the official loss of the
    same weights); bad values are refused by name."""
    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    args = ["epochs=1", "encoder_lr=0", "decoder_lr=0", f"phase1_checkpoint={best1}"]
    plain = run(PHASE2, export_root, tmp_path / "plain", *args)
    giou = run(PHASE2, export_root, tmp_path / "giou", *args, "giou_weight=1.0")
    assert math.isfinite(giou["best_val_loss"]) and giou["best_val_loss"] > plain["best_val_loss"] + 1e-3
    assert load_config(PHASE2)["giou_weight"] == 0.0
    for bad in ("-0.5", ".nan", "null"):
        with pytest.raises(ConfigError, match="'giou_weight' must be a finite number >= 0"):
            load_config(PHASE2, [f"giou_weight={bad}"])


def test_delta_gain_training(phase1, export_root, tmp_path):
    """delta_gain is a reparametrisation: at zero learning rates it scores exactly as without it and saves the same
    weights; trained, it takes other steps. Bad values are refused by name."""
    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    args = ["epochs=1", "encoder_lr=0", "decoder_lr=0", f"phase1_checkpoint={best1}"]
    plain = run(PHASE2, export_root, tmp_path / "plain", *args)
    gained = run(PHASE2, export_root, tmp_path / "gained", *args, "delta_gain=100")
    assert gained["best_val_loss"] == pytest.approx(plain["best_val_loss"], rel=1e-5)
    best = "weights/phase2/phase2_full_best.pth"
    plain_w, gained_w = state(tmp_path / "plain" / best), state(tmp_path / "gained" / best)
    for key, value in plain_w.items():
        assert torch.allclose(gained_w[key], value, rtol=1e-5, atol=1e-8), key
    trained = [a for a in args if not a.endswith("_lr=0")]
    run(PHASE2, export_root, tmp_path / "plain_t", *trained)
    run(PHASE2, export_root, tmp_path / "gained_t", *trained, "delta_gain=100")
    emb = "encoder.mamba_net.embedding.weight"
    moved = {name: (state(tmp_path / name / best)[emb] - plain_w[emb]).abs()[4:].sum()
             for name in ("plain_t", "gained_t")}
    assert moved["gained_t"] > 10 * moved["plain_t"] > 0
    assert load_config(PHASE2)["delta_gain"] == 1.0
    for bad in ("0", "-2", ".nan", "null"):
        with pytest.raises(ConfigError, match="'delta_gain' must be a finite number > 0"):
            load_config(PHASE2, [f"delta_gain={bad}"])


def test_relative_box_coder_training(phase1, export_root, tmp_path, assert_box_outputs_reset):
    """box_coder=relative from an absolute-coder start keeps every weight but the heads' output layers, which start
    at zero (said in the summary); it trains, writes the coder into its checkpoints and resumes; bad values are
    refused by name."""
    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    start = state(best1)
    frozen = run(PHASE2, export_root, tmp_path / "frozen", "epochs=1", "encoder_lr=0", "decoder_lr=0",
                 f"phase1_checkpoint={best1}", "box_coder=relative")
    assert "output layers zeroed for box_coder=relative" in frozen["start"]
    assert_box_outputs_reset(state(Path(frozen["best_checkpoint"])), start)
    assert read_checkpoint(frozen["best_checkpoint"]).config["box_coder"] == "relative"

    args = ["epochs=2", "encoder_lr=1e-4", "decoder_lr=5e-4", f"phase1_checkpoint={best1}", "box_coder=relative",
            "giou_weight=1.0"]
    full = run(PHASE2, export_root, tmp_path / "full", *args)
    trained = state(Path(full["last_checkpoint"]))
    assert math.isfinite(full["best_val_loss"]) and full["epochs_run"] == 2
    assert torch.count_nonzero(trained["ssm_decoder.head_series.5.normal_bboxes.weight"]) > 0
    run(PHASE2, export_root, tmp_path / "resumed", *args, "stop_after_epoch=1")
    resumed = run(PHASE2, export_root, tmp_path / "resumed", *args, resume=True)
    assert resumed["start"].startswith("resumed from") and "zeroed" not in resumed["start"]
    for key, value in state(Path(resumed["last_checkpoint"])).items():
        assert torch.equal(value, trained[key]), key
    assert load_config(PHASE2)["box_coder"] == "absolute"
    with pytest.raises(ConfigError, match=r"'box_coder' / 'output_sigmoid': box_coder must be one of "
                                          r"\('absolute', 'relative'\), got 'delta'"):
        load_config(PHASE2, ["box_coder=delta"])
    with pytest.raises(ConfigError, match="'box_coder' / 'output_sigmoid': .*cannot be combined with "
                                          "box_coder='relative'"):
        load_config(PHASE2, ["box_coder=relative", "output_sigmoid=true"])


# ------------------------------------------------------------------------------------------------- errors
def test_unknown_config_key_is_named(tmp_path, export_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text(PHASE1.read_text() + "learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config key 'learning_rate'"):
        train_main(bad, data=export_root)
    with pytest.raises(ConfigError, match=r"unknown config key 'epoch'"):
        train_main(PHASE1, data=export_root, overrides=["epoch=3"])
    with pytest.raises(ConfigError, match=r"'epochs' expects int"):
        load_config(PHASE1, ["epochs=many"])
    # learning rates as people type them (YAML 1.1 alone would read 1e-3 as a string)
    cfg = load_config(PHASE2, ["lr=1e-3", "encoder_lr=1e-5", "decoder_lr=5E-5", "pretrain_lr=2"])
    assert (cfg["lr"], cfg["encoder_lr"], cfg["decoder_lr"], cfg["pretrain_lr"]) == (1e-3, 1e-5, 5e-5, 2.0)
    with pytest.raises(ConfigError, match=r"'decoder_lr' expects float"):
        load_config(PHASE2, ["decoder_lr=fast"])
    assert main(["--config", str(PHASE1), "--data", str(export_root), "--set", "bogus=1"]) == 2


def test_missing_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="data folder .*nowhere does not exist"):
        train_main(PHASE1, data=tmp_path / "nowhere", overrides=[f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="no data folder"):
        train_main(PHASE1, overrides=[f"output_dir={tmp_path}"])


def test_bad_checkpoints(tmp_path, export_root):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        run(PHASE1, export_root, tmp_path, f"init_checkpoint={junk}")
    wrong = tmp_path / "wrong.pt"
    torch.save({"ddpm": {"module.encoder.something": torch.zeros(3)}}, wrong)
    with pytest.raises(CheckpointError, match="missing keys"):
        run(PHASE1, export_root, tmp_path, f"init_checkpoint={wrong}")
    with pytest.raises(CheckpointError, match="phase-1 best checkpoint not found"):
        run(PHASE2, export_root, tmp_path / "empty")
    with pytest.raises(TrainingError, match="no checkpoint to resume"):
        run(PHASE1, export_root, tmp_path / "empty", resume=True)


def test_official_checkpoint_start(tmp_path, export_root):
    from trackssm_lib.model import TrackSSM, save_official_checkpoint

    torch.manual_seed(5)
    official = save_official_checkpoint(tmp_path / "official.pt", TrackSSM(backend="torch"))
    summary = run(PHASE1, export_root, tmp_path, "epochs=1", f"init_checkpoint={official}")
    assert summary["start"] == f"init_checkpoint {official}"
    src, trained = state(official), state(tmp_path / "weights" / "phase1" / "phase1_decoder_best.pth")
    assert all(torch.equal(src[k], trained[k]) for k in src if k.startswith("encoder."))


def test_schedule_shape():
    f = [lr_factor(s, total_steps=100, warmup_steps=10, decay_from=50, min_ratio=0.01) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(x == 1.0 for x in f[10:51])
    assert all(a >= b for a, b in zip(f[50:], f[51:])) and f[-1] == pytest.approx(0.01)


def test_configs_hold_published_hyperparameters():
    p1, p2 = load_config(PHASE1), load_config(PHASE2)
    assert (p1["phase"], p1["lr"], p1["batch_size"], p1["epochs"], p1["patience"]) == (1, 1e-4, 16, 40, 7)
    assert (p1["sequence_length"], p1["num_queries"], p1["warmup_epochs"], p1["grad_clip"]) == (20, 300, 5, 1.0)
    assert (p2["phase"], p2["encoder_lr"], p2["decoder_lr"], p2["epochs"], p2["patience"]) == (2, 1e-5, 5e-5, 80, 10)
    assert (p2["warmup_epochs"], p2["grad_clip"], p1["output_sigmoid"]) == (5, 1.0, False)


# ---------------------------------------------------------------------------------------------------- DDP
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not available")
def test_torchrun_two_processes_cpu(phase1, export_root, tmp_path):
    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    overrides = [x for x in TINY if not x.startswith("num_threads")] + [
        "num_threads=1", "epochs=2", f"output_dir={tmp_path}", f"phase1_checkpoint={best1}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trackssm_lib", "train", "--config", str(PHASE2), "--data", str(export_root)]
    for o in overrides:
        cmd += ["--set", o]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '"world_size": 2' in proc.stdout and proc.stdout.count('"phase": 2') == 1  # rank 0 prints
    last = extra(tmp_path / "weights" / "phase2" / "phase2_full_last.pth")
    assert last["epoch"] == 2
    log = (tmp_path / "logs" / "phase2_training.log").read_text()
    assert "2 process(es)" in log and log.count("phase 2 epoch 2/2") == 1


def test_phase0_mot17_pretraining(export_root, tmp_path):
    mot17 = REPO.parent / "shared" / "data" / "mot17-train-gt"
    if not mot17.is_dir():
        pytest.skip(f"MOT17 ground truth not found at {mot17} (it lives in ../shared/data beside the checkout)")
    summary = run(PHASE1, export_root, tmp_path, "epochs=1", f"mot17_root={mot17}", "pretrain_max_batches=1")
    assert summary["start"].startswith(f"phase 0: MOTChallenge pedestrian GT {mot17} (7 sequences)")
    assert extra(tmp_path / "weights" / "phase0" / "phase0_pretrain.pth")["phase"] == 0


def test_short_history_training(phase1, export_root, tmp_path):
    """The young-track augmentation changes the training steps only, not the validation loss of the same weights. A
    start checkpoint written while ``history`` was an option (its config and training config store
    ``"history": 5``) serves as before; ``history`` itself is no longer a config key. Bad values are refused by
    name."""
    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    old = torch.load(best1, weights_only=True)
    old["config"]["history"] = 5
    old["extra"]["config"]["history"] = 5
    old_best1 = tmp_path / "old_phase1_best.pth"
    torch.save(old, old_best1)
    args = ["epochs=1", f"phase1_checkpoint={best1}"]
    frozen = [*args, "encoder_lr=0", "decoder_lr=0"]
    plain = run(PHASE2, export_root, tmp_path / "plain", "epochs=1", f"phase1_checkpoint={old_best1}",
                "encoder_lr=0", "decoder_lr=0")
    assert math.isfinite(plain["best_val_loss"])
    assert "history" not in read_checkpoint(tmp_path / "plain" / "weights/phase2/phase2_full_best.pth").config
    young = run(PHASE2, export_root, tmp_path / "young", *frozen, "short_history_prob=0.5")
    assert young["best_val_loss"] == pytest.approx(plain["best_val_loss"], rel=1e-6)
    best = "weights/phase2/phase2_full_best.pth"
    run(PHASE2, export_root, tmp_path / "young_t", *args, "short_history_prob=0.5")
    run(PHASE2, export_root, tmp_path / "plain_t", *args)
    young_w, plain_w = state(tmp_path / "young_t" / best), state(tmp_path / "plain_t" / best)
    assert any(not torch.equal(young_w[k], plain_w[k]) for k in young_w)
    with pytest.raises(ConfigError, match=r"'short_history_prob' must lie in \[0, 1\], got 1.5"):
        load_config(PHASE2, ["short_history_prob=1.5"])
    with pytest.raises(ConfigError, match="unknown config key 'history'"):
        load_config(PHASE2, ["history=5"])
    with pytest.raises(ConfigError, match=r"'sequence_length' must be >= 6 \(the official history needs 6 boxes\), "
                                          r"got 5"):
        load_config(PHASE2, ["sequence_length=5"])


def test_ego_aware_training(phase1, export_root, tmp_path):
    """ego_aware starts from a checkpoint without ego parameters (their last layer at zero: the same validation loss
    at zero learning rates), trains them with the decoder group and stores the option; phase 0 leaves them
    untouched. An export without camera poses is refused with the file named."""
    import shutil

    from trackssm_lib.model import load_checkpoint

    out1, _ = phase1
    best1 = out1 / "weights" / "phase1" / "phase1_decoder_best.pth"
    frozen = ["epochs=1", f"phase1_checkpoint={best1}", "encoder_lr=0", "decoder_lr=0"]
    plain = run(PHASE2, export_root, tmp_path / "plain", *frozen)
    ego0 = run(PHASE2, export_root, tmp_path / "ego0", *frozen, "ego_aware=true")
    assert ego0["best_val_loss"] == pytest.approx(plain["best_val_loss"], rel=1e-6)
    run(PHASE2, export_root, tmp_path / "ego", "epochs=1", f"phase1_checkpoint={best1}", "ego_aware=true")
    model = load_checkpoint(tmp_path / "ego" / "weights" / "phase2" / "phase2_full_best.pth")
    assert model.ego_aware and torch.count_nonzero(model.ego_encoder.net[-1].weight) > 0
    p1 = run(PHASE1, export_root, tmp_path / "p1", "epochs=1", "ego_aware=true", "lr=0")
    assert p1["start"].startswith("phase 0")
    phase0 = state(tmp_path / "p1" / "weights" / "phase0" / "phase0_pretrain.pth")
    assert torch.count_nonzero(phase0["ego_encoder.net.4.weight"]) == 0  # not trained in phase 0
    broken = tmp_path / "no_poses"
    shutil.copytree(export_root, broken)
    victim = sorted(broken.glob("*/*/camera.csv"))[0]
    victim.unlink()
    with pytest.raises(ValueError, match=f"{victim.name}: missing"):
        run(PHASE2, broken, tmp_path / "broken", *frozen, "ego_aware=true")
    with pytest.raises(ConfigError, match="ego_aware"):
        load_config(PHASE2, ["ego_aware=1"])
