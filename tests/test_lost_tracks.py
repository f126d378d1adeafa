"""Why confirmed tracks become lost: the cause of each tracked -> lost transition (trackssm_lib.lost_tracks)."""
from __future__ import annotations

import numpy as np
import pytest

from trackssm_lib.lost_tracks import (LOSS_CAUSES, MOTION_CAUSES, LostTrackRecorder, bind_object, classify_loss,
                                      lost_track_causes)
from trackssm_lib.trackers import KalmanTracker, Track, TrackState
from trackssm_lib.tracking import TrackingError

W, H = 60.0, 40.0
OBJ = 7


def box(x: float) -> np.ndarray:
    return np.array([x, 100.0, x + W, 100.0 + H])


def det(x: float, score: float = 0.9, cls: int = 0) -> np.ndarray:
    return np.array([[*box(x), score, cls]])


def truth(frames: dict[int, float]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    return {f: (np.array([OBJ]), box(x).reshape(1, 4)) for f, x in frames.items()}


def lost_track(predicted_x: float, obj: int | None = OBJ) -> Track:
    t = Track(box=box(predicted_x), score=0.9, class_id=0, start_frame=1, frame_id=4, state=TrackState.LOST,
              is_activated=True, track_id=1)
    t.extra["lost_tracks_object"] = obj
    return t


def test_bind_object_takes_the_best_covered_object():
    gt = {3: (np.array([1, 2]), np.stack([box(100.0), box(130.0)]))}
    assert bind_object(gt, 3, box(125.0)) == 2
    assert bind_object(gt, 3, box(104.0)) == 1
    assert bind_object(gt, 3, box(400.0)) is None  # covers nothing
    assert bind_object(gt, 4, box(100.0)) is None  # frame without annotation


@pytest.mark.parametrize("case, dets, predicted_x, other_det_index, obj, expected", [
    ("fp", det(100.0), 100.0, -1, None, "false_positive_track"),
    ("nothing", np.zeros((0, 6)), 100.0, -1, OBJ, "no_detection"),
    ("other class", det(100.0, cls=4), 100.0, -1, OBJ, "no_detection"),
    ("off the object", det(160.0), 100.0, -1, OBJ, "no_detection"),
    ("weak", det(100.0, score=0.05), 100.0, -1, OBJ, "below_low_thresh"),
    ("taken", det(100.0), 100.0, 0, OBJ, "taken_by_other_track"),
    ("high, far", det(100.0), 160.0, -1, OBJ, "high_prediction_miss"),
    ("low, far", det(100.0, score=0.3), 130.0, -1, OBJ, "low_prediction_miss"),
    ("high, near", det(100.0), 130.0, -1, OBJ, "other"),  # IoU 0.33 >= 0.2: match 1 could have taken it
])
def test_classify_loss(case, dets, predicted_x, other_det_index, obj, expected):
    trk = KalmanTracker(frame_rate=12)
    trk.frame_id = 5
    other = Track(box=box(300.0), score=0.9, class_id=0, start_frame=1, frame_id=5, is_activated=True, track_id=2,
                  det_index=other_det_index)
    trk.tracked = [other]
    assert classify_loss(trk, lost_track(predicted_x, obj), dets, truth({5: 100.0})) == expected


def test_unannotated_object():
    trk = KalmanTracker(frame_rate=12)
    trk.frame_id = 5
    assert classify_loss(trk, lost_track(100.0), det(100.0), truth({4: 100.0})) == "unannotated"


def run(frames: dict[int, np.ndarray], gt: dict, n: int) -> LostTrackRecorder:
    """A Kalman tracker over frames 1..n with the recorder around every update."""
    trk = KalmanTracker(frame_rate=12)
    rec = LostTrackRecorder({"s": gt})
    for f in range(1, n + 1):
        rec.before_update(f, {"s": trk})
        trk.update(frames.get(f, np.zeros((0, 6))))
        rec.after_update(f, {"s": trk}, {"s": frames.get(f, np.zeros((0, 6)))})
    return rec


def test_recorder_on_the_association():
    """A car moving 8 px per frame, undetected in frame 5, then jumping 45 px in frame 8 with a low score (IoU with
    the constant-velocity prediction about 0.3 < 0.5): one detector miss that the track gets back, one loss the
    motion model caused that it never gets back."""
    x = {f: 100.0 + 8 * f + (45.0 if f >= 8 else 0.0) for f in range(1, 10)}
    frames = {f: det(x[f], score=0.3 if f == 8 else 0.9) for f in x if f != 5}
    rec = run(frames, truth(x), 8)
    assert [(e["frame"], e["cause"]) for e in rec.events] == [(5, "no_detection"), (8, "low_prediction_miss")]
    s = rec.summary()
    assert s["total"] == 2 and s["motion_caused"] == 1
    assert s["reacquired"]["no_detection"] == 1 and s["reacquired"]["low_prediction_miss"] == 0
    assert set(s["lost"]) == set(LOSS_CAUSES)


def test_lost_track_causes_on_an_export(export_split):
    """Exact detections and ground-truth predictions lose no track through the motion model; Kalman on noisy
    detections does, and every loss has one of the causes."""
    data, split = export_split.parent, export_split.name
    oracle = lost_track_causes(data, split, "oracle", detections="gt", progress=False)
    kalman = lost_track_causes(data, split, "kalman", detections="noisy", progress=False)
    assert oracle["total"] > 0 and oracle["motion_caused"] == 0
    assert kalman["motion_caused"] > 0
    assert kalman["total"] == sum(kalman["lost"].values())
    assert all(kalman["reacquired"][c] <= kalman["lost"][c] for c in LOSS_CAUSES)
    assert MOTION_CAUSES == LOSS_CAUSES[4:]
    with pytest.raises(TrackingError, match="BoxMOT"):
        lost_track_causes(data, split, "boxmot:bytetrack", progress=False)
    with pytest.raises(TrackingError, match="no_such_split"):
        lost_track_causes(data, "no_such_split", "kalman", progress=False)


def test_bench_script_writes_the_table(export_split, tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "lost_tracks.py"
    spec = importlib.util.spec_from_file_location("bench_lost_tracks", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "lost"
    assert bench.main(["--data", str(export_split.parent), "--split", export_split.name, "--oracle",
                       "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| a tracked track becomes lost because | kalman | oracle |" in table
    saved = json.loads((out / "lost_tracks.json").read_text())["results"]
    assert set(saved) == {"kalman", "oracle"}
    assert f"| all | {saved['kalman']['total']:,} | {saved['oracle']['total']:,} |" in table
