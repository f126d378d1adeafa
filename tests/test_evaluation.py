"""Evaluation through TrackEval: perfect results, a planted identity switch, missing sequences, bad input,
the MOT15 reproduction of published values, and the command line."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.constants import CLASS_NAMES
from trackssm_lib.evaluation import (EvaluationError, add_evaluate_parser, evaluate, read_key_frames,
                                     read_seq_length)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MOT15 = SHARED_DATA / "mot15-tud"


def read_gt(seq_dir: Path) -> np.ndarray:
    return np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)


def write_rows(path: Path, rows: np.ndarray) -> None:
    """Write rows as tracker results: frame,id,x,y,w,h,score,class,-1,-1."""
    lines = [f"{int(r[0])},{int(r[1])},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},1,{int(r[7])},-1,-1"
             for r in rows]
    path.write_text("".join(line + "\n" for line in lines))


def perfect_results(split: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for seq in sorted(split.iterdir()):
        if (seq / "gt" / "gt.txt").is_file():
            write_rows(dest / f"{seq.name}.txt", read_gt(seq))
    return dest


def sequences(split: Path) -> list[Path]:
    return sorted(p for p in split.iterdir() if (p / "gt" / "gt.txt").is_file())


@pytest.mark.parametrize("protocol", ["keyframes", "all"])
def test_perfect_results_score_100(export_split, tmp_path, protocol):
    results = perfect_results(export_split, tmp_path / "res")
    out = evaluate(export_split, results, tmp_path / "out", protocol=protocol, print_summary=False)
    gt = np.concatenate([read_gt(s) for s in sequences(export_split)])
    present = [CLASS_NAMES[c] for c in np.unique(gt[:, 7].astype(int))]
    assert len(present) >= 2
    for name in CLASS_NAMES:
        m = out["per_class"][name]
        if name in present:
            assert m["GT_Dets"] > 0
            for key in ("HOTA", "MOTA", "IDF1", "DetA", "AssA"):
                assert m[key] == pytest.approx(100.0), (name, key)
            assert m["IDSW"] == 0 and m["FP"] == 0 and m["FN"] == 0
        else:
            assert m["GT_Dets"] == 0 and m["Dets"] == 0
    for row in ("combined_class_avg", "combined_det_avg"):
        assert out[row]["HOTA"] == pytest.approx(100.0) and out[row]["IDF1"] == pytest.approx(100.0)
    assert out["missing_sequences"] == [] and out["protocol"] == protocol and out["benchmark"] is None
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["per_class"]["car"]["HOTA"] == pytest.approx(100.0)
    assert isinstance(saved["per_class"]["car"]["IDSW"], int)
    assert "class avg" in (tmp_path / "out" / "summary.txt").read_text()
    # keyframes protocol: only the annotated frames are timesteps (and only their GT counts)
    seqs = sequences(export_split)
    if protocol == "keyframes":
        keys = {s.name: read_key_frames(s, read_seq_length(s)) for s in seqs}
        assert out["timesteps"] == sum(len(k) for k in keys.values())
        gt_key = sum(int(np.isin(read_gt(s)[:, 0], keys[s.name]).sum()) for s in seqs)
        assert out["combined_det_avg"]["GT_Dets"] == gt_key < len(gt)
    else:
        assert out["timesteps"] == sum(read_seq_length(s) for s in seqs)
        assert out["combined_det_avg"]["GT_Dets"] == len(gt)


def find_swap(split: Path):
    """(sequence, class id, track a, track b, frame f): f a keyframe, track a on keyframes before and from f on,
    track b of the same class only on frames before f. Swapping the ids from f on gives exactly one switch."""
    for seq in sequences(split):
        gt = read_gt(seq)
        keys = read_key_frames(seq, read_seq_length(seq))
        for cls in np.unique(gt[:, 7].astype(int)):
            rows = gt[gt[:, 7] == cls]
            spans = {int(i): rows[rows[:, 1] == i, 0] for i in np.unique(rows[:, 1])}
            for a, fa in spans.items():
                ka = np.intersect1d(fa, keys)
                for f in ka[1:]:
                    if not np.any(ka >= f):
                        continue
                    for b, fb in spans.items():
                        if b != a and fb.max() < f and len(np.intersect1d(fb, keys)):
                            return seq, int(cls), a, b, int(f)
    raise AssertionError("no suitable pair of tracks in the synthetic data")


@pytest.mark.parametrize("protocol", ["keyframes", "all"])
def test_planted_identity_swap_gives_one_idsw(export_split, tmp_path, protocol):
    results = perfect_results(export_split, tmp_path / "res")
    seq, cls, a, b, f = find_swap(export_split)
    rows = read_gt(seq)
    later = rows[:, 0] >= f
    ids = rows[:, 1].copy()
    ids[later & (rows[:, 1] == a)] = b
    ids[later & (rows[:, 1] == b)] = a
    rows[:, 1] = ids
    write_rows(results / f"{seq.name}.txt", rows)
    out = evaluate(export_split, results, tmp_path / "out", protocol=protocol, print_summary=False)
    name = CLASS_NAMES[cls]
    assert out["per_class"][name]["IDSW"] == 1
    assert out["per_class"][name]["MOTA"] < 100.0 and out["per_class"][name]["IDF1"] < 100.0
    assert out["per_class"][name]["FP"] == 0 and out["per_class"][name]["FN"] == 0
    assert all(m["IDSW"] == 0 for c, m in out["per_class"].items() if c != name)
    assert out["combined_det_avg"]["IDSW"] == 1


def test_missing_sequence_counts_as_misses(export_split, tmp_path, capsys):
    results = perfect_results(export_split, tmp_path / "res")
    dropped = sequences(export_split)[0].name
    (results / f"{dropped}.txt").unlink()
    out = evaluate(export_split, results, tmp_path / "out", print_summary=False)
    n = len(sequences(export_split))
    assert f"warning: 1 of {n} sequences have no result file in {results}" in capsys.readouterr().err
    assert out["missing_sequences"] == [dropped]
    assert dropped in out["sequences"]
    assert out["combined_class_avg"]["HOTA"] < 100.0 and out["combined_det_avg"]["MOTA"] < 100.0
    assert out["combined_det_avg"]["FN"] > 0 and out["combined_det_avg"]["FP"] == 0
    assert all(m["Dets"] == 0 for m in out["per_sequence"][dropped].values())
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "MISSING" in summary and dropped in summary
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["missing_sequences"] == [dropped]


def test_results_folder_without_any_sequence_is_an_error(export_split, tmp_path, capsys):
    """An empty results folder (or one holding no <sequence>.txt) scored nothing: an error naming the folder and
    the expected files, exit code 2 on the command line, no metrics written (the old code reported all-zero
    metrics and exit 0)."""
    from trackssm_lib import cli

    results = tmp_path / "res"
    results.mkdir()
    (results / "notes.md").write_text("not a result\n")
    first = sequences(export_split)[0].name
    with pytest.raises(EvaluationError, match=rf"no result file in {re.escape(str(results))}.*{first}\.txt"):
        evaluate(export_split, results, tmp_path / "out", print_summary=False)
    args = ["evaluate", "--gt", str(export_split), "--results", str(results), "--out", str(tmp_path / "out"),
            "--quiet"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"error: no result file in {results}" in err and f"{first}.txt" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_track_id_changing_class_names_file_and_line(export_split, tmp_path):
    """Classes are evaluated separately: an id that changes class would count as two tracks. The error names the
    file and the first line where the id has another class, and the line of its first class."""
    results = perfect_results(export_split, tmp_path / "res")
    target = results / f"{sequences(export_split)[-1].name}.txt"
    rows = np.loadtxt(target, delimiter=",", ndmin=2)
    first = 0
    later = [k for k in range(1, len(rows)) if rows[k, 1] == rows[first, 1]]
    assert later, "the first track of the sequence has a single row"
    k = later[len(later) // 2]
    rows[k:, 7] = np.where(rows[k:, 1] == rows[first, 1], (rows[first, 7] + 1) % len(CLASS_NAMES), rows[k:, 7])
    write_rows(target, rows)
    cls = int(rows[first, 7])
    with pytest.raises(EvaluationError) as err:
        evaluate(export_split, results, tmp_path / "out", print_summary=False)
    msg = str(err.value)
    assert f"{target}, line {k + 1}: track id {int(rows[first, 1])} has class {(cls + 1) % len(CLASS_NAMES)}" in msg
    assert f"but class {cls} ({CLASS_NAMES[cls]}) on line 1" in msg
    assert not (tmp_path / "out").exists()


def test_ground_truth_id_changing_class_is_still_read(export_split, tmp_path):
    """The one-class rule is for tracker results only: ground truth is read as before."""
    gt_dir = tmp_path / "gt"
    shutil.copytree(export_split, gt_dir)
    results = perfect_results(gt_dir, tmp_path / "res")
    path = sequences(gt_dir)[-1] / "gt" / "gt.txt"
    lines = [line.split(",") for line in path.read_text().splitlines()]
    k = max(i for i, parts in enumerate(lines) if parts[1] == lines[0][1])  # the first track's last row
    lines[k][7] = str((int(lines[0][7]) + 1) % len(CLASS_NAMES))
    path.write_text("".join(",".join(parts) + "\n" for parts in lines))
    out = evaluate(gt_dir, results, None, protocol="all", print_summary=False)
    assert out["combined_det_avg"]["GT_Dets"] == sum(len(read_gt(s)) for s in sequences(gt_dir))


def _bad_results(export_split: Path, tmp_path: Path, line_no: int, new_line: str) -> tuple[Path, Path]:
    results = perfect_results(export_split, tmp_path / "res")
    target = results / f"{sequences(export_split)[-1].name}.txt"
    lines = target.read_text().splitlines()
    lines[line_no - 1] = new_line
    target.write_text("\n".join(lines) + "\n")
    return results, target


@pytest.mark.parametrize("bad, expect", [
    ("3,7,10.0,20.0,abc,40.0,1,0,-1,-1", "not a number"),
    ("3,7,10.0,20.0,30.0,40.0", "columns"),
])
def test_malformed_line_names_file_and_line(export_split, tmp_path, bad, expect):
    results, target = _bad_results(export_split, tmp_path, 5, bad)
    with pytest.raises(EvaluationError, match=r"line 5\b") as err:
        evaluate(export_split, results, tmp_path / "out", print_summary=False)
    assert target.name in str(err.value) and expect in str(err.value)
    assert isinstance(err.value, ValueError)


def test_unknown_class_is_rejected(export_split, tmp_path):
    results, target = _bad_results(export_split, tmp_path, 4, "2,999,10.0,20.0,30.0,40.0,1,9,-1,-1")
    with pytest.raises(EvaluationError, match=r"line 4\b.*class id '9'") as err:
        evaluate(export_split, results, tmp_path / "out", print_summary=False)
    assert target.name in str(err.value)


def test_frame_beyond_sequence_length_is_rejected(export_split, tmp_path):
    seq = sequences(export_split)[-1]
    length = int([line for line in (seq / "seqinfo.ini").read_text().splitlines()
                  if line.startswith("seqLength=")][0].split("=")[1])
    results, target = _bad_results(export_split, tmp_path, 2, f"{length + 1},999,10,20,30,40,1,0,-1,-1")
    with pytest.raises(EvaluationError, match=rf"line 2\b.*frame {length + 1}.*seqLength={length}") as err:
        evaluate(export_split, results, tmp_path / "out", print_summary=False)
    assert target.name in str(err.value)


def test_result_for_unknown_sequence_and_duplicate_ids(export_split, tmp_path):
    results = perfect_results(export_split, tmp_path / "res")
    (results / "no-such-seq.txt").write_text("1,1,10,20,30,40,1,0,-1,-1\n")
    with pytest.raises(EvaluationError, match="not in the GT"):
        evaluate(export_split, results, tmp_path / "out", print_summary=False)
    (results / "no-such-seq.txt").unlink()
    target = results / f"{sequences(export_split)[0].name}.txt"
    target.write_text("1,5,10,20,30,40,1,0,-1,-1\n1,5,100,200,30,40,1,4,-1,-1\n")
    with pytest.raises(EvaluationError, match=r"line 2\b.*track id 5 appears twice in frame 1"):
        evaluate(export_split, results, tmp_path / "out", print_summary=False)


def test_mot15_reproduces_published_values(tmp_path):
    if not MOT15.is_dir():
        pytest.skip(f"MOT15 reference data not found at {MOT15} (it lives in ../shared/data beside the checkout)")
    expected = json.loads((MOT15 / "expected_metrics.json").read_text())
    out = evaluate(MOT15 / "gt", MOT15 / "results", tmp_path / "out", benchmark="MOT15", print_summary=False)
    assert out["benchmark"] == "MOT15" and list(out["per_class"]) == ["pedestrian"]
    assert out["missing_sequences"] == []
    # expected_metrics.json: fractions (tolerance atol 1e-3) and counts; ours: percentages and integer counts
    fractions = {"idf1": "IDF1", "idp": "IDP", "idr": "IDR", "recall": "CLR_Re", "precision": "CLR_Pr",
                 "mota": "MOTA"}
    counts = {"num_unique_objects": "GT_IDs", "mostly_tracked": "MT", "partially_tracked": "PT",
              "mostly_lost": "ML", "num_false_positives": "FP", "num_misses": "FN", "num_switches": "IDSW",
              "num_fragmentations": "Frag"}
    checked = 0
    for seq in ("TUD-Campus", "TUD-Stadtmitte", "OVERALL"):
        ours = out["per_class"]["pedestrian"] if seq == "OVERALL" else out["per_sequence"][seq]["pedestrian"]
        for column, value in zip(expected["columns"], expected[seq]):
            if column in fractions:
                assert ours[fractions[column]] / 100 == pytest.approx(value, abs=1e-5), (seq, column)
            elif column in counts:
                assert ours[counts[column]] == value, (seq, column)
            elif column == "motp_as_mean_1_minus_IoU":
                assert 1 - ours["MOTP"] / 100 == pytest.approx(value, abs=1e-5), (seq, column)
            else:
                raise AssertionError(f"unhandled column {column}")
            checked += 1
    assert checked == 3 * len(expected["columns"])


def test_mot15_missing_sequence_reported(tmp_path):
    if not MOT15.is_dir():
        pytest.skip(f"MOT15 reference data not found at {MOT15}")
    results = tmp_path / "res"
    results.mkdir()
    shutil.copy(MOT15 / "results" / "TUD-Campus.txt", results)
    out = evaluate(MOT15 / "gt", results, tmp_path / "out", benchmark="MOT15", print_summary=False)
    assert out["missing_sequences"] == ["TUD-Stadtmitte"]
    assert out["per_sequence"]["TUD-Stadtmitte"]["pedestrian"]["Dets"] == 0
    assert out["per_class"]["pedestrian"]["FN"] == 150 + out["per_sequence"]["TUD-Stadtmitte"]["pedestrian"]["GT_Dets"]


def _registered() -> bool:
    from trackssm_lib import cli

    parser = cli.build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return any("evaluate" in a.choices for a in actions)


def test_cli(export_split, tmp_path):
    results = perfect_results(export_split, tmp_path / "res")
    args = ["evaluate", "--gt", str(export_split), "--results", str(results), "--out", str(tmp_path / "out"),
            "--protocol", "all"]
    bad_dir = perfect_results(export_split, tmp_path / "bad")
    (bad_dir / f"{sequences(export_split)[0].name}.txt").write_text("1,1,2,3\n")
    bad = ["evaluate", "--gt", str(export_split), "--results", str(bad_dir), "--out", str(tmp_path / "out_bad")]
    if _registered():
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run([sys.executable, "-m", "trackssm_lib", *args], capture_output=True, text=True,
                              env=env, cwd=REPO_ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "HOTA" in done.stdout and "protocol all" in done.stdout
        failed = subprocess.run([sys.executable, "-m", "trackssm_lib", *bad], capture_output=True, text=True,
                                env=env, cwd=REPO_ROOT, timeout=120)
        assert failed.returncode == 2 and "line 1" in failed.stderr
    else:  # the lead has not registered the subcommand yet: the parser hook on a fresh parser
        parser = argparse.ArgumentParser()
        add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
        ns = parser.parse_args(args)
        assert ns.func(ns) == 0
        with pytest.raises(EvaluationError, match="line 1"):
            ns = parser.parse_args(bad)
            ns.func(ns)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["protocol"] == "all" and saved["combined_class_avg"]["HOTA"] == pytest.approx(100.0)


def test_mot17_rules_remove_distractor_matches(tmp_path):
    """MOT16+ rules: tracker boxes on distractor GT (static person, distractor, reflection) are not false positives;
    under MOT15 rules (no preprocessing) the same boxes are. Identity on the considered pedestrians stays 100 %."""
    mot17 = SHARED_DATA / "mot17-train-gt"
    if not mot17.is_dir():
        pytest.skip(f"MOT17 ground truth not found at {mot17} (it lives in ../shared/data beside the checkout)")
    name = "MOT17-09-FRCNN"
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    (gt_dir / name).symlink_to(mot17 / name)
    gt = read_gt(mot17 / name)
    pedestrians = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    distractors = gt[np.isin(gt[:, 7], [7, 8, 12])].copy()
    assert len(pedestrians) and len(distractors)
    distractors[:, 1] += pedestrians[:, 1].max()
    rows = np.concatenate([pedestrians, distractors])
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    rows[:, 7] = -1  # MOTChallenge results carry no class
    results = tmp_path / "res"
    results.mkdir()
    write_rows(results / f"{name}.txt", rows)

    mot17_out = evaluate(gt_dir, results, None, benchmark="MOT17", print_summary=False)["per_class"]["pedestrian"]
    assert mot17_out["GT_Dets"] == len(pedestrians)
    assert mot17_out["FP"] == 0 and mot17_out["IDSW"] == 0
    for key in ("HOTA", "MOTA", "IDF1"):
        assert mot17_out[key] == pytest.approx(100.0), key
    mot15_out = evaluate(gt_dir, results, None, benchmark="MOT15", print_summary=False)["per_class"]["pedestrian"]
    assert mot15_out["GT_Dets"] == len(pedestrians)
    assert mot15_out["FP"] == len(distractors) and mot15_out["MOTA"] < 100
