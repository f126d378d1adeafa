"""The command line as a user runs it: `python -m trackssm_lib synth` then `prepare`, in a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trackssm_lib", *args], capture_output=True, text=True, cwd=cwd)


def test_synth_then_prepare(tmp_path):
    res = _run("synth", "--out", str(tmp_path / "nusc"), "--version", "v1.0-mini", "--scenes", "2", "--seed", "5",
               "--no-images", "--quiet")
    assert res.returncode == 0, res.stderr
    res = _run("prepare", "--dataroot", str(tmp_path / "nusc"), "--version", "v1.0-mini", "--out",
               str(tmp_path / "out"), "--cameras", "CAM_FRONT", "CAM_BACK", "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert "export" in res.stderr  # the progress bar
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["sequences"] == 4 and stats["boxes"] > 0
    assert set(stats["splits"]) == {"mini_train", "mini_val"}


def test_synth_bad_version(tmp_path):
    res = _run("synth", "--out", str(tmp_path / "nusc"), "--version", "v2.0")
    assert res.returncode == 2 and "v2.0" in res.stderr
    assert not (tmp_path / "nusc").exists()


def test_prepare_missing_dataroot(tmp_path):
    res = _run("prepare", "--dataroot", str(tmp_path / "nope"), "--version", "v1.0-mini", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and str(tmp_path / "nope") in res.stderr and "Traceback" not in res.stderr


def test_ctrl_c_during_train_points_to_resume(tmp_path, monkeypatch, capsys):
    """Ctrl-C in `train` (exit 130) says the last finished epoch's checkpoint is kept and gives the exact command
    that continues the run (same --config, --data and --set, plus --resume); before any epoch finished, the
    command that starts it again."""
    import shlex
    from pathlib import Path

    from trackssm_lib import cli, training

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_command", interrupted)
    config = Path(__file__).resolve().parents[1] / "configs" / "nuscenes_phase1.yaml"
    out = tmp_path / "my run"
    args = ["train", "--config", str(config), "--data", str(tmp_path / "export"), "--set", f"output_dir={out}",
            "epochs=3", "device=cpu"]
    assert cli.main([*args[:-1], "--set", args[-1]]) == 130  # --set items given apart come back together
    err = capsys.readouterr().err
    assert "complete sequences" not in err and "no checkpoint to resume" in err
    assert shlex.join(["python", "-m", "trackssm_lib", *args]) in err
    last = out / "weights" / "phase1" / "phase1_decoder_last.pth"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    assert cli.main([*args, "--overwrite"]) == 130
    err = capsys.readouterr().err
    assert f"the checkpoint of the last finished epoch is kept ({last})" in err
    assert shlex.join(["python", "-m", "trackssm_lib", *args, "--resume"]) in err
