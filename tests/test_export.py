"""Export: layout and format, TrackEval can read it, determinism, resume, bad input."""
from __future__ import annotations

import configparser
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from trackssm_lib import export as export_mod
from trackssm_lib.cli import main
from trackssm_lib.constants import CAMERAS, CLASS_IDS, tracking_class
from trackssm_lib.export import prepare
from trackssm_lib.frames import camera_frames
from trackssm_lib.nuscenes_db import DataError, TABLES


def _tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def real_export(real_scene_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "out"
    stats = prepare(real_scene_root, "v1.0-mini", out, progress=False)
    return out, stats


def test_layout_and_rows(real_export, real_nusc):
    out, stats = real_export
    assert stats["splits"] == {"mini_val": 6} and stats["sequences"] == 6
    assert (out / "seqmaps" / "mini_val.txt").read_text().split() == ["name"] + sorted(
        f"scene-0916_{c}" for c in CAMERAS)
    for camera in CAMERAS:
        seq = out / "mini_val" / f"scene-0916_{camera}"
        info = configparser.ConfigParser()
        info.read(seq / "seqinfo.ini")
        cam = camera_frames(real_nusc, "scene-0916", camera)
        assert int(info["Sequence"]["seqLength"]) == len(cam)
        assert info["Sequence"]["frameRate"] == "12" and info["Sequence"]["imWidth"] == "1600"
        frames = np.genfromtxt(seq / "frames.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
        assert list(frames["sample_data_token"]) == list(cam.tokens)
        assert np.array_equal(frames["frame"], np.arange(1, len(cam) + 1))
        gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")
        assert gt.shape[1] == 10 and np.all(gt[:, 6] == 1) and np.all(gt[:, 9] == -1)
        assert gt[:, 0].min() >= 1 and gt[:, 0].max() <= len(cam)
        assert np.all(gt[:, 4] > 0) and np.all(gt[:, 5] > 0)
        assert set(np.unique(gt[:, 7]).astype(int)) <= set(range(7))
        assert set(np.unique(gt[:, 8]).astype(int)) <= {1, 2, 3, 4}
        ids = np.unique(gt[:, 1]).astype(int)
        assert np.array_equal(ids, np.arange(1, len(ids) + 1)), "track ids are consecutive from 1"
        assert len({(f, i) for f, i in gt[:, :2]}) == len(gt), "one box per id and frame"
        table = np.genfromtxt(seq / "gt" / "ids.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
        assert np.array_equal(table["track_id"], ids)
        for row in table:
            inst = real_nusc.get("instance", row["instance_token"])
            category = real_nusc.get("category", inst["category_token"])["name"]
            assert tracking_class(category) == row["class_name"] and CLASS_IDS[row["class_name"]] == row["class_id"]
            assert np.all(gt[gt[:, 1] == row["track_id"], 7] == row["class_id"])
    assert stats["boxes"] == stats["keyframe_boxes"] + stats["interpolated_boxes"]
    assert 0.1 < stats["keyframe_share"] < 0.3  # ~1 keyframe in 6 frames
    assert stats["per_class"]["car"] > 0 and stats["per_class"]["pedestrian"] > 0


def test_trackeval_mot_reader_loads_export(real_export, tmp_path):
    import trackeval

    out, _ = real_export
    trackers = tmp_path / "trackers" / "gtcopy" / "data"
    trackers.mkdir(parents=True)
    for seq in (out / "mini_val").iterdir():
        shutil.copy(seq / "gt" / "gt.txt", trackers / f"{seq.name}.txt")
    config = trackeval.datasets.MotChallenge2DBox.get_default_dataset_config()
    config.update({"GT_FOLDER": str(out / "mini_val"), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
                   "SEQMAP_FILE": str(out / "seqmaps" / "mini_val.txt"), "SKIP_SPLIT_FOL": True,
                   "TRACKERS_TO_EVAL": ["gtcopy"], "PRINT_CONFIG": False})
    dataset = trackeval.datasets.MotChallenge2DBox(config)
    assert sorted(dataset.seq_list) == sorted(p.name for p in (out / "mini_val").iterdir())
    for seq in dataset.seq_list:
        raw = dataset.get_raw_seq_data("gtcopy", seq)
        assert raw["num_timesteps"] == dataset.seq_lengths[seq]
        assert sum(len(x) for x in raw["gt_ids"]) > 0


def test_same_input_same_files_and_resume(real_scene_root, tmp_path, real_export):
    out_a, _ = real_export
    out_b = tmp_path / "b"
    prepare(real_scene_root, "v1.0-mini", out_b, cameras=list(CAMERAS), progress=False)
    assert _tree_hashes(out_a) == _tree_hashes(out_b)
    # interrupted run: a sequence missing and a stale temporary folder left behind
    victim = out_b / "mini_val" / "scene-0916_CAM_BACK"
    shutil.rmtree(victim)
    (out_b / "mini_val" / ".tmp-scene-0916_CAM_BACK-999").mkdir()
    stats = prepare(real_scene_root, "v1.0-mini", out_b, progress=False)
    assert stats["_timing"]["written"] == 1 and stats["_timing"]["skipped"] == 5
    assert _tree_hashes(out_a) == _tree_hashes(out_b)


def test_failure_leaves_no_partial_sequence(real_scene_root, tmp_path, monkeypatch):
    def broken(seq_dir, *args):
        (seq_dir / "gt").mkdir(parents=True)
        (seq_dir / "gt" / "gt.txt").write_text("1,1,")
        raise OSError("disk full")

    monkeypatch.setattr(export_mod, "write_sequence", broken)
    with pytest.raises(OSError, match="disk full"):
        prepare(real_scene_root, "v1.0-mini", tmp_path / "o", cameras=["CAM_FRONT"], progress=False)
    assert list((tmp_path / "o" / "mini_val").iterdir()) == []


def test_other_settings_refused_without_overwrite(real_scene_root, tmp_path):
    prepare(real_scene_root, "v1.0-mini", tmp_path / "o", cameras=["CAM_FRONT"], progress=False)
    with pytest.raises(DataError, match="interp"):
        prepare(real_scene_root, "v1.0-mini", tmp_path / "o", cameras=["CAM_FRONT"], interp="devkit",
                progress=False)
    stats = prepare(real_scene_root, "v1.0-mini", tmp_path / "o", cameras=["CAM_BACK"], interp="linear2d",
                    overwrite=True, progress=False)
    assert stats["interp"] == "linear2d" and stats["_timing"]["written"] == 1
    # the previous export is replaced as a whole: no sequence made with other settings remains
    assert sorted(p.name for p in (tmp_path / "o" / "mini_val").iterdir()) == ["scene-0916_CAM_BACK"]
    assert stats["sequences"] == 1


def test_workers_give_the_same_files(synth_root, tmp_path):
    prepare(synth_root, "v1.0-mini", tmp_path / "one", cameras=["CAM_FRONT", "CAM_BACK"], progress=False)
    prepare(synth_root, "v1.0-mini", tmp_path / "two", cameras=["CAM_FRONT", "CAM_BACK"], workers=2,
            progress=False)
    hashes_one = _tree_hashes(tmp_path / "one")
    hashes_two = _tree_hashes(tmp_path / "two")
    assert hashes_one == hashes_two  # export.json too: it names the dataset by content, not by path
    stats = json.loads((tmp_path / "one" / "stats.json").read_text())
    assert set(stats["splits"]) == {"mini_train", "mini_val"}


def test_moved_dataset_and_export_are_reused_and_changed_tables_refused(synth_root, tmp_path):
    from trackssm_lib.export import export_identity
    from trackssm_lib.viewer import load_sequence

    first = tmp_path / "a"
    shutil.copytree(synth_root, first / "nusc")
    prepare(first / "nusc", "v1.0-mini", first / "export", split="mini_val", cameras=["CAM_FRONT"], progress=False)
    identity = export_identity(first / "export")
    # the checkout (dataset and export together) moved to another folder
    moved = tmp_path / "b"
    os.rename(first, moved)
    stats = prepare(moved / "nusc", "v1.0-mini", moved / "export", split="mini_val", cameras=["CAM_FRONT"],
                    progress=False)
    assert stats["_timing"]["written"] == 0 and stats["_timing"]["skipped"] > 0
    assert export_identity(moved / "export") == identity
    seq = next((moved / "export" / "mini_val").iterdir())
    assert load_sequence(seq).dataroot.resolve() == (moved / "nusc").resolve()  # imDir is relative
    # the same tables elsewhere (another disk): still the same export
    other = tmp_path / "disk2" / "nusc"
    shutil.copytree(moved / "nusc", other)
    stats = prepare(other, "v1.0-mini", moved / "export", split="mini_val", cameras=["CAM_FRONT"], progress=False)
    assert stats["_timing"]["written"] == 0
    # one changed value in one table: refused, naming the table
    table = other / "v1.0-mini" / "sample_annotation.json"
    rows = json.loads(table.read_text())
    rows[0]["size"] = [rows[0]["size"][0] + 0.5, *rows[0]["size"][1:]]
    table.write_text(json.dumps(rows))
    with pytest.raises(DataError, match="sample_annotation.json sha256 .*, now "):
        prepare(other, "v1.0-mini", moved / "export", split="mini_val", cameras=["CAM_FRONT"], progress=False)
    assert export_identity(moved / "export") == identity


def _run_cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err


def test_cli_prepare_runs(real_scene_root, tmp_path, capsys):
    code, _ = _run_cli(["prepare", "--dataroot", str(real_scene_root), "--version", "v1.0-mini", "--out",
                        str(tmp_path / "o"), "--split", "mini_val", "--cameras", "CAM_FRONT", "--quiet"], capsys)
    assert code == 0 and (tmp_path / "o" / "mini_val" / "scene-0916_CAM_FRONT" / "gt" / "gt.txt").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--split", "train"], "unknown split 'train'"),
    (["--cameras", "CAM_TOP"], "unknown camera"),
    (["--scenes", "scene-9999"], "unknown scene 'scene-9999'"),
    (["--split", "mini_train", "--scenes", "scene-0916"], "is in split 'mini_val'"),
    (["--max-scenes", "0"], "max_scenes must be >= 1"),
])
def test_cli_bad_arguments(real_scene_root, tmp_path, capsys, extra, message):
    code, err = _run_cli(["prepare", "--dataroot", str(real_scene_root), "--version", "v1.0-mini", "--out",
                          str(tmp_path / "o"), "--quiet", *extra], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "o" / "mini_val").exists() or not any((tmp_path / "o" / "mini_val").iterdir())


def test_max_scenes_takes_the_first_scenes_of_the_split(synth_nusc):
    from trackssm_lib.export import select_scenes

    every = select_scenes(synth_nusc, "mini_train", None)
    assert len(every) >= 2 and all(split == "mini_train" for _, split in every)
    assert select_scenes(synth_nusc, "mini_train", None, max_scenes=1) == every[:1]
    assert select_scenes(synth_nusc, "all", None, max_scenes=1000) == select_scenes(synth_nusc, "all", None)
    named = [every[1][0], every[0][0]]
    assert [n for n, _ in select_scenes(synth_nusc, "mini_train", named, max_scenes=1)] == named[:1]


def test_cli_wrong_version_and_unwritable_output(real_scene_root, tmp_path, capsys):
    code, err = _run_cli(["prepare", "--dataroot", str(real_scene_root), "--version", "v1.0-trainval", "--out",
                          str(tmp_path / "o")], capsys)
    assert code == 2 and "v1.0-trainval" in err and "v1.0-mini" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, err = _run_cli(["prepare", "--dataroot", str(real_scene_root), "--version", "v1.0-mini", "--out",
                          str(blocker / "sub")], capsys)
    assert code == 2 and "cannot write to output folder" in err and str(blocker / "sub") in err


def test_cli_missing_and_broken_table(real_scene_root, tmp_path, capsys):
    root = tmp_path / "nusc"
    shutil.copytree(real_scene_root / "v1.0-mini", root / "v1.0-mini")
    (root / "v1.0-mini" / "sample_annotation.json").unlink()
    code, err = _run_cli(["prepare", "--dataroot", str(root), "--version", "v1.0-mini", "--out",
                          str(tmp_path / "o")], capsys)
    assert code == 2 and "sample_annotation.json" in err
    shutil.copy(real_scene_root / "v1.0-mini" / "sample_annotation.json", root / "v1.0-mini")
    (root / "v1.0-mini" / "ego_pose.json").write_text('[{"token": "x",')
    code, err = _run_cli(["prepare", "--dataroot", str(root), "--version", "v1.0-mini", "--out",
                          str(tmp_path / "o")], capsys)
    assert code == 2 and "ego_pose.json" in err
    assert not (tmp_path / "o").exists()
    assert len(TABLES) == 13


def _changed_copy(root: Path, dest: Path, scene_index: int = 0) -> Path:
    """A copy of the dataset whose first annotation in scene ``scene_index`` is 0.3 m wider."""
    shutil.copytree(root, dest)
    tables = dest / "v1.0-mini"
    scene = json.loads((tables / "scene.json").read_text())[scene_index]
    rows = json.loads((tables / "sample_annotation.json").read_text())
    row = next(r for r in rows if r["sample_token"] == scene["first_sample_token"])
    row["size"] = [row["size"][0] + 0.3, *row["size"][1:]]
    (tables / "sample_annotation.json").write_text(json.dumps(rows))
    return dest


def test_changed_tables_rebuild_only_the_sequences_that_read_them(synth_root, tmp_path):
    cams = ["CAM_FRONT", "CAM_BACK"]
    prepare(synth_root, "v1.0-mini", tmp_path / "o", cameras=cams, progress=False)
    changed = _changed_copy(synth_root, tmp_path / "nusc")
    with pytest.raises(DataError, match="use --overwrite"):
        prepare(changed, "v1.0-mini", tmp_path / "o", cameras=cams, progress=False)
    stats = prepare(changed, "v1.0-mini", tmp_path / "o", cameras=cams, overwrite=True, progress=False)
    assert stats["_timing"]["changed"] == 2 and stats["_timing"]["carried"] == 4  # one scene of three
    assert not export_mod.staging_dir(tmp_path / "o").exists()
    prepare(changed, "v1.0-mini", tmp_path / "fresh", cameras=cams, progress=False)
    assert _tree_hashes(tmp_path / "o") == _tree_hashes(tmp_path / "fresh")


def test_failed_overwrite_leaves_the_old_export_and_resumes(synth_root, tmp_path, monkeypatch):
    prepare(synth_root, "v1.0-mini", tmp_path / "o", cameras=["CAM_FRONT"], progress=False)
    before = _tree_hashes(tmp_path / "o")
    real_write, calls = export_mod.write_sequence, []

    def fails_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(export_mod, "write_sequence", fails_second)
    with pytest.raises(KeyboardInterrupt):
        prepare(synth_root, "v1.0-mini", tmp_path / "o", cameras=["CAM_FRONT"], interp="linear2d", overwrite=True,
                progress=False)
    assert _tree_hashes(tmp_path / "o") == before  # nothing lost, nothing mixed in
    monkeypatch.setattr(export_mod, "write_sequence", real_write)
    stats = prepare(synth_root, "v1.0-mini", tmp_path / "o", cameras=["CAM_FRONT"], interp="linear2d",
                    overwrite=True, progress=False)
    assert stats["_timing"]["written"] == 2 and stats["_timing"]["skipped"] == 1  # the interrupted run's first
    prepare(synth_root, "v1.0-mini", tmp_path / "fresh", cameras=["CAM_FRONT"], interp="linear2d", progress=False)
    assert _tree_hashes(tmp_path / "o") == _tree_hashes(tmp_path / "fresh")


def test_missing_or_damaged_files_are_rebuilt_and_counted(synth_root, tmp_path, capsys):
    prepare(synth_root, "v1.0-mini", tmp_path / "o", split="mini_train", cameras=["CAM_FRONT"], progress=False)
    before = _tree_hashes(tmp_path / "o")
    seqs = sorted((tmp_path / "o" / "mini_train").iterdir())
    text = (seqs[0] / "gt" / "gt.txt").read_text()
    (seqs[0] / "gt" / "gt.txt").write_text(text[: len(text) // 2])  # truncated
    (seqs[1] / "frames.csv").unlink()
    code = main(["prepare", "--dataroot", str(synth_root), "--version", "v1.0-mini", "--out", str(tmp_path / "o"),
                 "--split", "mini_train", "--cameras", "CAM_FRONT", "--quiet"])
    assert code == 0 and "2 sequence(s) rebuilt: files missing or damaged" in capsys.readouterr().err
    assert _tree_hashes(tmp_path / "o") == before
    # an export made before inputs.json existed: recorded as it is, not rebuilt
    for seq in seqs:
        (seq / "inputs.json").unlink()
    stats = prepare(synth_root, "v1.0-mini", tmp_path / "o", split="mini_train", cameras=["CAM_FRONT"],
                    progress=False)
    assert stats["_timing"]["adopted"] == len(seqs) and stats["_timing"]["written"] == 0
    assert {p for p in _tree_hashes(tmp_path / "o") if not p.endswith("inputs.json")} == {
        p for p in before if not p.endswith("inputs.json")}
