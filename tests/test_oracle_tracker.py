"""The oracle motion model: ground-truth predictions with the shared association (the bound of any motion model)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.trackers import BaseTracker, KalmanTracker, OracleTracker, PastOracleTracker
from trackssm_lib.trackers.oracle_tracker import ground_truth_boxes

NONE = np.zeros((0, 6))
W, H = 60.0, 40.0


def write_gt(seq: Path, rows: list[tuple[int, int, float]]) -> Path:
    """``rows``: (frame, object id, left x); every box W x H at y = 100, class car."""
    (seq / "gt").mkdir(parents=True, exist_ok=True)
    lines = [f"{f},{i},{x:.3f},100,{W},{H},1,0,1,-1" for f, i, x in rows]
    (seq / "gt" / "gt.txt").write_text("\n".join(lines) + "\n")
    return seq


def det_at(x: float, offset: float = 0.0) -> np.ndarray:
    return np.array([[x + offset, 100.0, x + offset + W, 100.0 + H, 0.9, 0]])


def accelerating(f: int) -> float:
    return 100.0 + 2.0 * f * f


def test_ground_truth_boxes_groups_rows_by_frame(tmp_path):
    seq = write_gt(tmp_path / "s", [(2, 5, 10.0), (1, 3, 0.0), (2, 3, 4.0)])
    gt = ground_truth_boxes(seq)
    assert sorted(gt) == [1, 2]
    ids, boxes = gt[2]
    assert ids.tolist() == [5, 3]
    np.testing.assert_allclose(boxes, [[10, 100, 70, 140], [4, 100, 64, 140]])
    with pytest.raises(FileNotFoundError, match="gt.txt"):
        ground_truth_boxes(tmp_path / "missing")


def test_oracle_predicts_the_annotated_box_and_keeps_the_id_where_kalman_loses_it(tmp_path):
    """An accelerating object, undetected for 4 frames: the oracle's lost track sits on the annotated box in every
    one of them and takes the detection back with its id; constant velocity falls behind and loses it."""
    seq = write_gt(tmp_path / "s", [(f, 7, accelerating(f)) for f in range(1, 11)])
    dets = {f: det_at(accelerating(f)) for f in (1, 2, 3, 4, 9, 10)}
    oracle, kalman = OracleTracker(ground_truth_boxes(seq), frame_rate=12), KalmanTracker(frame_rate=12)
    ids: dict[str, dict[int, list[int]]] = {"oracle": {}, "kalman": {}}
    for f in range(1, 11):
        for name, trk in (("oracle", oracle), ("kalman", kalman)):
            out = trk.update(dets.get(f, NONE))
            ids[name][f] = out[:, 4].astype(int).tolist()
        if 5 <= f <= 8:
            assert len(oracle.lost) == 1
            np.testing.assert_allclose(oracle.lost[0].box, [accelerating(f), 100, accelerating(f) + W, 140])
    assert [ids["oracle"][f] for f in (1, 2, 3, 4, 9, 10)] == [[1]] * 6
    assert 1 not in ids["kalman"][9] + ids["kalman"][10]  # the contrast: constant velocity lost it


def test_oracle_continues_from_the_truth_where_the_object_is_unannotated(tmp_path):
    """Detections 3 px off the truth; the object unannotated in frames 5-6: the prediction there is the truth's
    constant-velocity continuation (not the detections'), as if the state had been the truth all along."""
    seq = write_gt(tmp_path / "s", [(f, 1, 100.0 + 10 * f) for f in (1, 2, 3, 4, 7, 8)])
    oracle = OracleTracker(ground_truth_boxes(seq), frame_rate=12)
    for f in range(1, 5):
        assert oracle.update(det_at(100.0 + 10 * f, offset=3.0))[:, 4].tolist() == [1]
    for f in (5, 6):
        oracle.update(NONE)
        np.testing.assert_allclose(oracle.lost[0].box, [100 + 10 * f, 100, 160 + 10 * f, 140], atol=1e-9)
    assert oracle.update(det_at(170.0, offset=3.0))[:, 4].tolist() == [1]


def test_oracle_without_a_matching_object_is_kalman(tmp_path):
    """A track on something that is not annotated (a false positive) is predicted by the Kalman filter alone."""
    seq = write_gt(tmp_path / "s", [(f, 1, 900.0) for f in range(1, 9)])
    oracle = OracleTracker(ground_truth_boxes(seq), frame_rate=12)
    kalman = KalmanTracker(frame_rate=12)
    for f in range(1, 9):
        d = det_at(100.0 + 8 * f) if f < 5 else NONE
        np.testing.assert_array_equal(oracle.update(d), kalman.update(d))
        np.testing.assert_array_equal([t.box for t in oracle.tracked + oracle.lost],
                                      [t.box for t in kalman.tracked + kalman.lost])
    assert oracle.lost and oracle.lost[0].extra["object"] is None


def test_oracle_shares_the_association():
    for name in ("update", "step", "prediction_pool", "output", "_remove_duplicates"):
        assert getattr(OracleTracker, name) is getattr(BaseTracker, name)


def test_oracle_through_run_tracking(tmp_path):
    """``--tracker oracle`` on a prepared split beats Kalman on the same noisy detections (that is what a bound
    is for), refuses a checkpoint, and names a missing ground-truth file; so does ``oracle-past`` (the truth's past
    without its future)."""
    from trackssm_lib.evaluation import evaluate
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset
    from trackssm_lib.tracking import TrackingError, run_tracking

    generate_dataset(tmp_path / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp_path / "nusc", "v1.0-mini", tmp_path / "export", progress=False)
    scores = {}
    for tracker in ("kalman", "oracle", "oracle-past"):
        run_tracking(tmp_path / "export", "mini_val", tracker=tracker, detections="noisy", out=tmp_path / tracker,
                     progress=False)
        scores[tracker] = evaluate(tmp_path / "export" / "mini_val", tmp_path / tracker, None,
                                   print_summary=False)["combined_det_avg"]
    assert scores["oracle"]["HOTA"] > scores["kalman"]["HOTA"]
    assert scores["oracle"]["IDSW"] < scores["kalman"]["IDSW"]
    assert scores["oracle-past"]["HOTA"] > scores["kalman"]["HOTA"]  # 60.3 vs 57.2 (oracle 60.5)
    assert scores["oracle-past"]["IDSW"] < scores["kalman"]["IDSW"]
    with pytest.raises(TrackingError, match="checkpoint"):
        run_tracking(tmp_path / "export", "mini_val", tracker="oracle", checkpoint=tmp_path / "x.pth",
                     out=tmp_path / "c", progress=False)
    victim = sorted((tmp_path / "export" / "mini_val").iterdir())[0] / "gt" / "gt.txt"
    victim.unlink()
    for tracker in ("oracle", "oracle-past"):
        with pytest.raises(TrackingError, match="gt.txt is missing"):
            run_tracking(tmp_path / "export", "mini_val", tracker=tracker, out=tmp_path / "d", progress=False)


def test_past_oracle_extrapolates_the_truths_past_not_its_future(tmp_path):
    """An accelerating object: the past oracle predicts the truth of the frame just tracked plus its last
    displacement (constant velocity), the oracle the truth of the predicted frame. Detected or not, a bound track is
    re-anchored to the truth before each prediction."""
    seq = write_gt(tmp_path / "s", [(f, 7, accelerating(f)) for f in range(1, 11)])
    gt = ground_truth_boxes(seq)
    past, oracle = PastOracleTracker(gt, frame_rate=12), OracleTracker(gt, frame_rate=12)
    for f in range(1, 6):
        for trk in (past, oracle):
            assert trk.update(det_at(accelerating(f), offset=3.0))[:, 4].tolist() == [1]
    x_past = 2 * accelerating(5) - accelerating(4)  # 168: constant velocity from the truth of frames 4 and 5
    np.testing.assert_allclose(past.predict(past.prediction_pool()), [[x_past, 100, x_past + W, 140]])
    np.testing.assert_allclose(oracle.predict(oracle.prediction_pool()),
                               [[accelerating(6), 100, accelerating(6) + W, 140]])  # 172: the future
    past = PastOracleTracker(gt, frame_rate=12)
    for f in range(1, 9):
        past.update(det_at(accelerating(f), offset=3.0) if f <= 4 else NONE)
        if f >= 5:  # undetected: each frame's prediction starts again from the truth of the frame before
            x = 2 * accelerating(f - 1) - accelerating(f - 2)
            np.testing.assert_allclose(past.lost[0].box, [x, 100, x + W, 140], atol=1e-9)


def test_past_oracle_shares_the_association():
    for name in ("update", "step", "prediction_pool", "output", "_remove_duplicates", "correct", "init_motion"):
        assert getattr(PastOracleTracker, name) is getattr(OracleTracker, name)
    assert issubclass(PastOracleTracker, BaseTracker)
