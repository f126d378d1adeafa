"""Progress bars: ``track`` counts camera frames within and across scenes, ``evaluate`` counts sequences (reading,
then TrackEval's per-sequence loop); both silent when off. Run on the shared tiny synthetic export."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from trackssm_lib.data import read_seqinfo


def last_bar(err: str, desc: str) -> str:
    """The last state tqdm wrote of the bar named ``desc`` (tqdm redraws with carriage returns)."""
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith(desc + ":")]
    assert lines, f"no {desc!r} bar in {err!r}"
    return lines[-1]


def sequence_dirs(split: Path) -> list[Path]:
    return sorted(p for p in split.iterdir() if (p / "gt" / "gt.txt").is_file())


def check_cli(add_parser, args: list[str], capsys, desc: str, count: str) -> None:
    """The command line shows the bar ``desc`` ending at ``count``, and none with ``--quiet``."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args(args)
    assert ns.func(ns) == 0
    assert count in last_bar(capsys.readouterr().err, desc)
    ns = parser.parse_args(args + ["--quiet"])
    assert ns.func(ns) == 0
    assert desc not in capsys.readouterr().err


def test_track_scene_reports_frames_within_a_scene(export_split):
    from trackssm_lib.tracking import group_scenes, track_scene

    dirs = next(iter(group_scenes(sequence_dirs(export_split)).values()))
    lengths = [read_seqinfo(d)["seqLength"] for d in dirs]
    calls: list[int] = []
    track_scene(dirs, "kalman", None, "gt", None, seed=0, on_frames=calls.append)
    assert sum(calls) == sum(lengths)                        # every camera frame, once
    assert len(calls) == -(-max(lengths) // 12)             # every 12 frame indices and once at the end
    assert len(calls) > 1


def test_track_bar_counts_camera_frames(export_split, tmp_path, capsys):
    from trackssm_lib.tracking import add_track_parser, group_scenes, run_tracking, split_dirs

    dirs = split_dirs(export_split.parent, export_split.name)  # in the order they are tracked
    total = sum(read_seqinfo(d)["seqLength"] for d in dirs)
    last_scene = list(group_scenes(dirs))[-1]
    summary = run_tracking(export_split.parent, export_split.name, tracker="kalman", detections="gt",
                           out=tmp_path / "on", progress=True)
    bar = last_bar(capsys.readouterr().err, "track kalman")
    assert f" {total}/{total} " in bar and "frame" in bar and last_scene in bar, bar
    assert summary["frames"] == total
    run_tracking(export_split.parent, export_split.name, tracker="kalman", detections="gt", out=tmp_path / "off",
                 progress=False)
    assert "track kalman" not in capsys.readouterr().err
    check_cli(add_track_parser, ["track", "--data", str(export_split.parent), "--split", export_split.name,
                                 "--tracker", "kalman", "--out", str(tmp_path / "cli")],
              capsys, "track kalman", f" {total}/{total} ")


def test_evaluate_bars_count_sequences(export_split, tmp_path, capsys):
    from trackssm_lib.evaluation import add_evaluate_parser, evaluate

    dirs = sequence_dirs(export_split)
    n = len(dirs)
    results = tmp_path / "res"
    results.mkdir()
    for d in dirs:                                           # the ground truth as results
        shutil.copy(d / "gt" / "gt.txt", results / f"{d.name}.txt")
    evaluate(export_split, results, None, print_summary=False)  # library default: no bars
    err = capsys.readouterr().err
    assert "evaluate read" not in err and "evaluate TrackEval" not in err
    for protocol in ("keyframes", "all"):
        out = evaluate(export_split, results, None, protocol=protocol, print_summary=False, progress=True)
        err = capsys.readouterr().err
        assert out["sequences"] == [d.name for d in dirs]
        assert f" {n}/{n} " in last_bar(err, "evaluate read")
        bar = last_bar(err, "evaluate TrackEval")
        assert f" {n}/{n} " in bar and "seq" in bar
        assert dirs[-1].name in bar                          # TrackEval's serial loop reached the last sequence
    check_cli(add_evaluate_parser, ["evaluate", "--gt", str(export_split), "--results", str(results), "--out",
                                    str(tmp_path / "cli")], capsys, "evaluate TrackEval", f" {n}/{n} ")


def test_tracking_sets_and_restores_the_thread_count(export_split, tmp_path):
    import pytest
    import torch

    from trackssm_lib.tracking import TRACK_THREADS, TrackingError, run_tracking, torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    summary = run_tracking(export_split.parent, export_split.name, tracker="kalman", detections="gt",
                           out=tmp_path / "one", progress=False, threads=1)
    assert summary["threads"] == 1 and torch.get_num_threads() == before
    summary = run_tracking(export_split.parent, export_split.name, tracker="kalman", detections="gt",
                           out=tmp_path / "default", progress=False)
    assert summary["threads"] == TRACK_THREADS
    with pytest.raises(TrackingError, match="--threads must be >= 1, got 0"):
        run_tracking(export_split.parent, export_split.name, tracker="kalman", out=tmp_path / "bad", threads=0)
    assert not (tmp_path / "bad").exists()  # refused before anything was written
