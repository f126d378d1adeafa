"""Chapter 05 (evaluation): the notebook under papermill on a tiny synthetic export, the comparison library and the
identity-switch marker."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from trackssm_lib import zoo
from trackssm_lib.records import load_figures
from trackssm_lib.report import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "05_evaluation.ipynb"


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    """2 synthetic v1.0-mini scenes x 2 cameras, exported (mini_train and mini_val, 2 sequences each)."""
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("eval05")
    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", cameras=["CAM_FRONT", "CAM_BACK"], progress=False)
    return tmp / "export"


def test_split_mapping(tiny_export):
    from trackssm_lib.comparison import resolve_split

    assert resolve_split(tiny_export, "test") == "mini_val"
    assert resolve_split(tiny_export, "val") == "mini_val"
    assert resolve_split(tiny_export, "mini_train") == "mini_train"


def test_kalman_on_gt_detections(tiny_export, tmp_path, no_boxmot):
    from trackssm_lib.comparison import COMBINED, compare_trackers, published_targets_table

    trackers = [{"name": "kalman", "tracker": "kalman", "checkpoint": None},
                {"name": "bytetrack", "tracker": "boxmot:bytetrack", "checkpoint": None}]
    rows = compare_trackers(tiny_export, "test", trackers, detections=["gt"], out_dir=tmp_path, say=lambda m: None)
    comb = [r for r in rows if r["tracker"] == "kalman" and r["class_name"] == COMBINED["combined_class_avg"]]
    assert len(comb) == 1 and comb[0]["HOTA"] > 80 and comb[0]["sequences"] == 2
    byte = [r for r in rows if r["tracker"] == "bytetrack"]
    assert len(byte) == 1 and byte[0]["status"] == "unavailable" and byte[0]["HOTA"] is None
    assert "not installed" in byte[0]["reason"]
    # a second call reuses the finished run (same rows, no tracking)
    messages = []
    again = compare_trackers(tiny_export, "test", trackers, detections=["gt"], out_dir=tmp_path,
                             say=messages.append)
    assert again == rows and any("reusing" in m for m in messages)
    # targets on a final model that is not in the comparison: 4 rows, nothing claimed
    targets = published_targets_table(rows)
    assert len(targets) == 4 and all(t["met"] == "n/a" and t["measured"] is None for t in targets)


def test_moved_export_and_results_are_reused(tiny_export, tmp_path):
    """Recorded runs name the export by content: copied (with their results) to another folder, they are reused."""
    import shutil

    from trackssm_lib.comparison import compare_trackers

    trackers = [{"name": "kalman", "tracker": "kalman", "checkpoint": None}]
    shutil.copytree(tiny_export, tmp_path / "a" / "export")
    rows = compare_trackers(tmp_path / "a" / "export", "test", trackers, detections=["gt"],
                            out_dir=tmp_path / "a" / "eval", say=lambda m: None)
    (tmp_path / "a").rename(tmp_path / "b")
    messages = []
    again = compare_trackers(tmp_path / "b" / "export", "test", trackers, detections=["gt"],
                             out_dir=tmp_path / "b" / "eval", say=messages.append)
    assert again == rows and messages == [f"kalman (gt): reusing {tmp_path / 'b' / 'eval' / 'kalman' / 'gt'}"]


def test_comparison_lost_timeout(tiny_export, tmp_path, monkeypatch):
    """``lost_seconds`` reaches the association of the tracking run and is part of the cached settings."""
    import json

    import trackssm_lib.tracking as tracking
    from trackssm_lib.comparison import ComparisonError, compare_trackers, run_folder

    calls = []
    real = tracking.run_tracking

    def recording(*args, **kwargs):
        calls.append(kwargs.get("lost_seconds"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "run_tracking", recording)
    trackers = [{"name": "kalman", "tracker": "kalman", "checkpoint": None}]
    compare_trackers(tiny_export, "test", trackers, detections=["gt"], out_dir=tmp_path, say=lambda m: None)
    settings = json.loads((run_folder(tmp_path, "kalman", "gt") / "settings.json").read_text())["settings"]
    assert calls == [1.0] and settings["lost_seconds"] == 1.0
    messages = []
    compare_trackers(tiny_export, "test", trackers, detections=["gt"], out_dir=tmp_path, say=messages.append,
                     lost_seconds=0.5)  # another timeout: tracked again, not reused
    settings = json.loads((run_folder(tmp_path, "kalman", "gt") / "settings.json").read_text())["settings"]
    assert calls == [1.0, 0.5] and settings["lost_seconds"] == 0.5
    assert not any("reusing" in m for m in messages)
    with pytest.raises(ComparisonError, match="lost_seconds"):
        compare_trackers(tiny_export, "test", trackers, detections=["gt"], out_dir=tmp_path, lost_seconds=-1)


def test_boxmot_baselines_in_comparison(tiny_export, tmp_path, needs_boxmot):
    from trackssm_lib.comparison import COMBINED, compare_trackers, default_trackers

    trackers = [t for t in default_trackers(None) if t["tracker"].startswith("boxmot:")]
    assert [t["tracker"] for t in trackers] == ["boxmot:bytetrack", "boxmot:botsort", "boxmot:ocsort"]
    rows = compare_trackers(tiny_export, "test", trackers, detections=["gt"], out_dir=tmp_path, say=lambda m: None)
    comb = {r["tracker"]: r for r in rows if r["class_name"] == COMBINED["combined_det_avg"]}
    assert set(comb) == {"bytetrack", "botsort", "ocsort"}
    for name, row in comb.items():
        assert row["status"] == "ok" and 50 < row["HOTA"] <= 100 and row["sequences"] == 2, name


def test_identity_switch_marker():
    from trackssm_lib.tracking_plots import identity_switches

    frames = range(1, 7)
    gt = np.array([[f, 1, 100, 100, 50, 50] for f in frames] + [[f, 2, 400, 100, 50, 50] for f in frames], float)
    # results: ids 5 and 6 follow GT 1 and 2, swap on frame 4, GT 2 unmatched on frame 2 (box far away)
    res = []
    for f in frames:
        a, b = (5, 6) if f < 4 else (6, 5)
        res.append([f, a, 102, 101, 50, 50])
        res.append([f, b, 400 if f != 2 else 900, 100, 50, 50])
    sw = identity_switches(gt, np.array(res, float))
    assert [(s["frame"], s["gt_id"], s["from_id"], s["to_id"]) for s in sw] == [(4, 1, 5, 6), (4, 2, 6, 5)]
    assert identity_switches(gt, np.zeros((0, 10))) == []
    # a match below IoU 0.5 is no match: no switch
    shifted = np.array([[f, 9 if f < 4 else 5, 100 + (60 if f >= 4 else 0), 100, 50, 50] for f in frames], float)
    assert identity_switches(gt[gt[:, 1] == 1], shifted) == []


def test_evaluation_notebook(tiny_export, tmp_path):
    import papermill
    import torch

    from trackssm_lib.model import TrackSSM, save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "training" / "weights" / "phase0" / "phase0_pretrain.pth", TrackSSM())
    # stand-ins: phase 2 = the same weights (its runs are reused); phase 1 missing -> not available
    phase2 = tmp_path / "training" / "weights" / "phase2" / "phase2_full_best.pth"
    phase2.parent.mkdir(parents=True)
    phase2.write_bytes(ckpt.read_bytes())
    trackers = [{"name": "kalman", "tracker": "kalman", "checkpoint": None},
                {"name": "trackssm-zero-shot", "tracker": "trackssm",
                 "checkpoint": "weights/phase0/phase0_pretrain.pth"},
                {"name": "trackssm-phase1", "tracker": "trackssm",
                 "checkpoint": "weights/phase1/phase1_decoder_best.pth"},
                {"name": "trackssm-phase2", "tracker": "trackssm", "checkpoint": "weights/phase2/phase2_full_best.pth"},
                {"name": "bytetrack", "tracker": "boxmot:bytetrack", "checkpoint": None},
                *zoo.headline_specs()]  # the shipped headline model with its track flags, and kalman-ego
    assert [t["name"] for t in trackers[-2:]] == [f"zoo:{zoo.headline_entry()['name']}", "kalman-ego"]
    out = tmp_path / "nb"
    out.mkdir()
    params = {"export_dir": str(tiny_export), "split": "test", "trackers": trackers, "max_sequences": 1,
              "training_root": str(tmp_path / "training"),
              "output_dir": str(out)}
    papermill.execute_notebook(str(NOTEBOOK), str(out / "05_evaluation.ipynb"), parameters=params,
                               kernel_name="python3", progress_bar=False, cwd=str(PROJECT_ROOT),
                               execution_timeout=600)
    fig = load_figures(out / "05_evaluation.json")
    assert Path(fig["kernel_python"]) == Path(sys.executable)
    assert fig["eval_split"] == "mini_val" and fig["n_sequences"] == 1
    rows = fig["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(0 <= r["HOTA"] <= 100 for r in ok)
    for name in ("kalman", "trackssm-zero-shot", "trackssm-phase2", trackers[-2]["name"], "kalman-ego"):
        assert {r["detections"] for r in ok if r["tracker"] == name} == {"gt", "noisy"}, name
    have_boxmot = importlib.util.find_spec("boxmot") is not None
    assert set(fig["unavailable"]) == {"trackssm-phase1"} | (set() if have_boxmot else {"bytetrack"})
    if have_boxmot:  # the optional baseline ran on the same detections
        assert {r["detections"] for r in ok if r["tracker"] == "bytetrack"} == {"gt", "noisy"}
    else:
        assert "not installed" in fig["unavailable"]["bytetrack"]
    assert "not found" in fig["unavailable"]["trackssm-phase1"]
    assert {r["detections"] for r in rows if r["tracker"] == "bytetrack"} == {"gt", "noisy"}
    assert all(r["HOTA"] is None for r in rows if r["status"] != "ok")
    targets = fig["targets"]
    assert len(targets) == 4 and all(t["sequences"] == 1 for t in targets)
    assert all(t["met"] in ("yes", "no") for t in targets)
    idsw = targets[0]
    assert idsw["metric"].startswith("IDSW") and idsw["met"] == ("yes" if idsw["measured"] is not None
                                                                 and idsw["measured"] <= -70 else "no") \
        or idsw["measured"] is None
    assert fig["combined"]["kalman|gt"]["HOTA"] > fig["combined"]["kalman|noisy"]["HOTA"]
    # the zoo row ran with the shipped weights (sha256 checked) and its track flags
    zoo_dirs = [d for d in (out / "evaluation").iterdir() if d.name.startswith("zoo")]
    assert len(zoo_dirs) == 1
    settings = json.loads((zoo_dirs[0] / "noisy" / "settings.json").read_text())["settings"]
    assert settings["ego_compensation"] is True
    assert settings["checkpoint_sha256"] == zoo.headline_entry()["sha256"]
    # identity switches by cause: one row per run, adding up to TrackEval's count of that run
    causes = {f"{c['tracker']}|{c['detections']}": c for c in fig["switch_causes"]}
    assert set(causes) == {k for k, v in fig["combined"].items() if v["status"] == "ok"}
    for key, c in causes.items():
        assert c["swap"] + c["long_absence"] + c["missed"] + c["track_lost"] == c["IDSW"] == fig["combined"][key]["IDSW"], key
    assert sum(c["IDSW"] for c in causes.values()) > 0
    assert fig["sequence_plot"]["tracker"] == "trackssm-phase2" and fig["sequence_plot"]["switches"] >= 0
