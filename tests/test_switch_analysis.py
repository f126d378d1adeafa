"""Identity-switch analysis: the count equals TrackEval's IDSW per class, and planted switches get their cause."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.constants import CLASS_NAMES
from trackssm_lib.evaluation import evaluate, read_key_frames, read_seq_length
from trackssm_lib.switch_analysis import detected_frames, find_switches, longest_absence, summarize_switches


def sequences(split: Path) -> list[Path]:
    return sorted(p for p in split.iterdir() if (p / "gt" / "gt.txt").is_file())


def read_gt(seq_dir: Path) -> np.ndarray:
    return np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)


def write_rows(path: Path, rows: np.ndarray) -> None:
    path.write_text("".join(f"{int(r[0])},{int(r[1])},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},1,{int(r[7])},"
                            "-1,-1\n" for r in rows))


def perfect_results(split: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for seq in sequences(split):
        write_rows(dest / f"{seq.name}.txt", read_gt(seq))
    return dest


def keyframes(seq: Path) -> np.ndarray:
    return read_key_frames(seq, read_seq_length(seq))


def idsw_per_class(split: Path, results: Path, tmp: Path) -> dict[str, int]:
    out = evaluate(split, results, tmp / "eval", print_summary=False)
    return {c: m["IDSW"] for c, m in out["per_class"].items() if m["IDSW"]}


def test_longest_absence():
    assert longest_absence(np.array([1, 2, 3, 4, 5]), 1, 5) == 0
    assert longest_absence(np.array([1, 2, 9, 10]), 2, 10) == 6  # frames 3..8
    assert longest_absence(np.array([1, 5, 6, 12]), 1, 12) == 5  # 7..11 beats 2..4
    assert longest_absence(np.array([], dtype=np.int64), 3, 4) == 0


def test_perfect_results_have_no_switches(export_split, tmp_path):
    assert find_switches(export_split, perfect_results(export_split, tmp_path / "res")) == []


def _two_objects_together(split: Path):
    """(seq, a, b, f): objects a and b of one class both annotated on two consecutive keyframes k < f."""
    for seq in sequences(split):
        gt, keys = read_gt(seq), keyframes(seq)
        for k0, f in zip(keys[:-1], keys[1:]):
            for cls in np.unique(gt[:, 7]):
                both = [set(gt[(gt[:, 0] == k) & (gt[:, 7] == cls), 1].astype(int)) for k in (k0, f)]
                common = sorted(both[0] & both[1])
                if len(common) >= 2:
                    return seq, common[0], common[1], int(f)
    raise AssertionError("no two objects of one class on consecutive keyframes in the synthetic data")


def test_exchanged_ids_are_two_swaps(export_split, tmp_path):
    results = perfect_results(export_split, tmp_path / "res")
    seq, a, b, f = _two_objects_together(export_split)
    rows = read_gt(seq)
    later = rows[:, 0] >= f
    ids = rows[:, 1].copy()
    ids[later & (rows[:, 1] == a)], ids[later & (rows[:, 1] == b)] = b, a
    rows[:, 1] = ids
    write_rows(results / f"{seq.name}.txt", rows)
    switches = find_switches(export_split, results)
    assert sorted((s.gt_id, s.previous_id, s.track_id, s.frame) for s in switches) == [(a, a, b, f), (b, b, a, f)]
    assert {s.cause for s in switches} == {"swap"} and {s.sequence for s in switches} == {seq.name}
    assert all(s.previous_frame < f and s.absent_frames == 0 for s in switches)
    assert Counter(s.class_name for s in switches) == Counter(idsw_per_class(export_split, results, tmp_path))


def _continuous_object(split: Path, span: int = 1):
    """(seq, a, k0, k1): object a annotated on every frame from keyframe k0 through keyframe k1, ``span`` keyframes
    later."""
    for seq in sequences(split):
        gt, keys = read_gt(seq), keyframes(seq)
        for k0, k1 in zip(keys[:-span], keys[span:]):
            for a in np.unique(gt[gt[:, 0] == k0, 1]).astype(int):
                frames = set(gt[gt[:, 1] == a, 0].astype(int))
                if all(x in frames for x in range(int(k0), int(k1) + 1)):
                    return seq, a, int(k0), int(k1)
    raise AssertionError(f"no object annotated across {span + 1} keyframes in the synthetic data")


def test_new_id_on_a_continuous_object_is_a_lost_track(export_split, tmp_path):
    results = perfect_results(export_split, tmp_path / "res")
    seq, a, _, f = _continuous_object(export_split)
    rows = read_gt(seq)
    new_id = int(rows[:, 1].max()) + 1
    rows[(rows[:, 1] == a) & (rows[:, 0] >= f), 1] = new_id
    write_rows(results / f"{seq.name}.txt", rows)
    switches = find_switches(export_split, results)
    assert [(s.gt_id, s.previous_id, s.track_id, s.frame, s.cause) for s in switches] == \
        [(a, a, new_id, f, "track_lost")]
    summary = summarize_switches(switches)
    assert summary["total"] == 1 and summary["by_cause"] == {"swap": 0, "long_absence": 0, "missed": 0,
                                                             "track_lost": 1}
    assert Counter(s.class_name for s in switches) == Counter(idsw_per_class(export_split, results, tmp_path))


def test_absence_longer_than_the_timeout(export_split, tmp_path):
    """An object removed from the GT for 17 frames (between keyframes k0 and k0 + 3), then given a new id: a
    ``long_absence`` with the 1 s timeout (12 frames at 12 Hz), a ``track_lost`` with a 2 s timeout."""
    split = tmp_path / "split"
    shutil.copytree(export_split, split)
    seq, a, k0, k2 = _continuous_object(split, span=3)
    gt = read_gt(seq)
    gap = (gt[:, 1] == a) & (gt[:, 0] > k0) & (gt[:, 0] < k2)
    assert 12 < gap.sum() <= 24
    gt = gt[~gap]
    lines = (seq / "gt" / "gt.txt").read_text().splitlines()
    (seq / "gt" / "gt.txt").write_text("".join(line + "\n" for line, drop in zip(lines, gap) if not drop))
    results = perfect_results(split, tmp_path / "res")
    new_id = int(gt[:, 1].max()) + 1
    gt[(gt[:, 1] == a) & (gt[:, 0] >= k2), 1] = new_id
    write_rows(results / f"{seq.name}.txt", gt)
    switches = find_switches(split, results)
    assert [(s.gt_id, s.track_id, s.previous_frame, s.frame, s.absent_frames, s.cause) for s in switches] == \
        [(a, new_id, int(k0), int(k2), int(gap.sum()), "long_absence")]
    assert [s.cause for s in find_switches(split, results, lost_seconds=2.0)] == ["track_lost"]
    assert Counter(s.class_name for s in switches) == Counter(idsw_per_class(split, results, tmp_path))


def test_detected_frames():
    """A detection of the object: its class, IoU >= 0.5 with its box (any score)."""
    gt = np.array([[1, 7, 100, 100, 40, 20, 1, 0, 1, -1],
                   [2, 7, 102, 100, 40, 20, 1, 0, 1, -1],
                   [3, 7, 104, 100, 40, 20, 1, 0, 1, -1],
                   [4, 7, 106, 100, 40, 20, 1, 0, 1, -1]], dtype=float)
    dets = {1: np.array([[101, 101, 141, 121, 0.1, 0]]),  # the object (low score still counts)
            2: np.array([[102, 100, 142, 120, 0.9, 4]]),  # same box, another class
            3: np.array([[124, 100, 164, 120, 0.9, 0], [500, 500, 540, 520, 0.9, 0]]),  # IoU 400 / 1200 = 1/3
            4: np.zeros((0, 6))}
    assert detected_frames(gt, dets, 0).tolist() == [1]
    dets[3] = np.array([[114, 100, 154, 120, 0.9, 0]])  # IoU 30 / 50 = 0.6
    assert detected_frames(gt, dets, 0).tolist() == [1, 3]
    assert detected_frames(gt, dets, 4).tolist() == [2]


def _write_detections(folder: Path, split: Path, drop=None) -> Path:
    """Every GT box as a detection file per sequence (the ``gt`` profile), minus the rows ``drop(seq, gt)`` marks."""
    folder.mkdir(parents=True, exist_ok=True)
    for seq in sequences(split):
        gt = read_gt(seq)
        keep = ~drop(seq, gt) if drop is not None else np.ones(len(gt), dtype=bool)
        (folder / f"{seq.name}.txt").write_text("".join(
            f"{int(r[0])},-1,{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},0.9,{int(r[7])}\n" for r in gt[keep]))
    return folder


@pytest.mark.parametrize("undetected, cause", [(17, "missed"), (12, "track_lost"), (0, "track_lost")])
def test_missed_needs_a_detection_gap_longer_than_the_timeout(export_split, tmp_path, undetected, cause):
    """A track that stops outputting an object at keyframe k0 and is replaced by a new id at k0 + 3 (18 frames
    later, the object annotated throughout): with the detections given, ``missed`` when the object had no detection
    for more than the 1 s timeout (12 frames), else ``track_lost``; without them always ``track_lost``."""
    seq, a, k0, k3 = _continuous_object(export_split, span=3)
    rows = read_gt(seq)
    results = perfect_results(export_split, tmp_path / "res")
    obj = rows[:, 1] == a
    new_id = int(rows[:, 1].max()) + 1
    rows[obj & (rows[:, 0] >= k3), 1] = new_id
    write_rows(results / f"{seq.name}.txt", rows[~(obj & (rows[:, 0] > k0) & (rows[:, 0] < k3))])
    dets = _write_detections(tmp_path / "dets", export_split, lambda s, gt: (
        (s == seq) & (gt[:, 1] == a) & (gt[:, 0] > k0) & (gt[:, 0] <= k0 + undetected)))

    found = find_switches(export_split, results, detections=dets)
    assert [(s.gt_id, s.previous_id, s.track_id, s.previous_frame, s.frame, s.absent_frames, s.undetected_frames,
             s.cause) for s in found] == [(a, a, new_id, k0, k3, 0, undetected, cause)]
    assert [(s.cause, s.undetected_frames) for s in find_switches(export_split, results)] == [("track_lost", None)]
    assert [s.cause for s in find_switches(export_split, results, detections="gt")] == ["track_lost"]
    assert Counter(s.class_name for s in found) == Counter(idsw_per_class(export_split, results, tmp_path))


def test_counts_equal_trackeval_on_tracker_output(export_split, tmp_path):
    """Kalman tracking on noisy detections with a zero lost timeout (every miss ends a track: many switches);
    the switches per class, under both protocols, are TrackEval's IDSW."""
    from trackssm_lib.tracking import run_tracking

    run_tracking(export_split.parent, export_split.name, tracker="kalman", detections="noisy",
                 out=tmp_path / "res", seed=0, progress=False, lost_seconds=0.0)
    for protocol in ("keyframes", "all"):
        out = evaluate(export_split, tmp_path / "res", tmp_path / protocol, protocol=protocol, print_summary=False)
        expected = {c: m["IDSW"] for c, m in out["per_class"].items() if m["IDSW"]}
        switches = find_switches(export_split, tmp_path / "res", protocol=protocol)
        assert sum(expected.values()) >= 3
        assert dict(Counter(s.class_name for s in switches)) == expected
        assert set(CLASS_NAMES) >= {s.class_name for s in switches}


def _scrambled_results(split: Path, dest: Path, seed: int) -> Path:
    """Results built to make CLEAR's matching rules matter: every box jittered, half of them with a jittered
    duplicate under another id (so the best-IoU box changes from frame to frame and only the kept-match bonus holds
    an id), ids permuted within a class on some frames, and some frames without any output."""
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for seq in sequences(split):
        gt = read_gt(seq)
        frames = np.unique(gt[:, 0])
        out = []
        for f in frames:
            if rng.random() < 0.15:
                continue  # a frame without output
            rows = gt[gt[:, 0] == f].copy()
            if rng.random() < 0.2:  # permute ids within each class on this frame
                for cls in np.unique(rows[:, 7]):
                    sel = np.where(rows[:, 7] == cls)[0]
                    rows[sel, 1] = rows[rng.permutation(sel), 1]
            dup = rows[rng.random(len(rows)) < 0.5].copy()
            dup[:, 1] += 1000
            rows = np.concatenate([rows, dup])
            rows[:, 2:4] += rng.normal(0, 0.08, (len(rows), 2)) * rows[:, 4:6]
            out.append(rows)
        write_rows(dest / f"{seq.name}.txt", np.concatenate(out) if out else np.zeros((0, 10)))
    return dest


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("protocol", ["keyframes", "all"])
def test_counts_equal_trackeval_on_scrambled_results(export_split, tmp_path, seed, protocol):
    results = _scrambled_results(export_split, tmp_path / "res", seed)
    out = evaluate(export_split, results, tmp_path / "eval", protocol=protocol, print_summary=False)
    expected = {c: m["IDSW"] for c, m in out["per_class"].items() if m["IDSW"]}
    switches = find_switches(export_split, results, protocol=protocol)
    assert sum(expected.values()) >= 20
    assert dict(Counter(s.class_name for s in switches)) == expected
    assert {s.cause for s in switches} >= {"swap"}
    # the figure's switch marker (one sequence's files, every frame or the given frames) finds the same switches
    from trackssm_lib.tracking_plots import identity_switches

    marked = []
    for seq in sequences(export_split):
        frames = keyframes(seq) if protocol == "keyframes" else None
        res = np.loadtxt(results / f"{seq.name}.txt", delimiter=",", ndmin=2)
        marked += [(seq.name, m["frame"], m["gt_id"], m["from_id"], m["to_id"])
                   for m in identity_switches(read_gt(seq), res, frames=frames)]
    assert sorted(marked) == sorted((s.sequence, s.frame, s.gt_id, s.previous_id, s.track_id) for s in switches)
