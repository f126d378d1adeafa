"""Oracle motion model: each track's next box is the ground truth's. An analysis bound, not a tracker to deploy.

Same association as every tracker here and, where the oracle knows nothing, the same constant-velocity Kalman filter
as :class:`~trackssm_lib.trackers.KalmanTracker`. After each match (and at birth) a track is bound to the
ground-truth object its detection covers: the object annotated in that frame whose box has the highest IoU with the
detection, at least ``bind_iou``. Its prediction for the next frame is that object's annotated box there. Wherever
the object's box is known (at the match and at each predicted frame) the Kalman state is set to it (position;
velocity = the object's displacement since the frame before, when annotated there), so that through frames
without annotation the track continues from the truth at constant velocity. A track on a false positive gets the
Kalman prediction.

No motion model predicts the next box better than the truth, so what this tracker scores on the same detections
bounds what any motion model can reach with this association (``--tracker oracle``; ``bench/track_quality.py
--oracle`` reports how much of the Kalman-to-oracle gap a trained model closes). It reads the sequence's
``gt/gt.txt``, so it only runs on prepared sequences with ground truth.

:class:`PastOracleTracker` (``oracle-past``) knows the object's past but not its future: before each prediction a
bound track's state is set to the object's annotated box in the current frame (detected or not), with its
displacement since the frame before as the velocity, and advanced at constant velocity. It is a perfect filter of
the past with a constant-velocity motion model, so it separates the two things a motion model does: estimating where
the object is from noisy, missing detections (Kalman -> ``oracle-past``) and foreseeing how it will move
(``oracle-past`` -> ``oracle``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from trackssm_lib.boxes import iou_matrix, xyxy_to_cxcywh
from trackssm_lib.data import read_gt
from trackssm_lib.trackers.association import Track
from trackssm_lib.trackers.kalman_tracker import KalmanTracker

GroundTruth = Mapping[int, tuple[np.ndarray, np.ndarray]]  # frame -> (object ids (K,), boxes (K, 4) x1y1x2y2)


def ground_truth_boxes(seq_dir: str | Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``<seq_dir>/gt/gt.txt`` -> {frame: (object ids (K,), boxes (K, 4) x1, y1, x2, y2)}."""
    gt = read_gt(Path(seq_dir) / "gt" / "gt.txt", min_columns=6)
    gt = gt[np.argsort(gt[:, 0], kind="stable")]
    frames = gt[:, 0].astype(np.int64)
    boxes = np.column_stack([gt[:, 2], gt[:, 3], gt[:, 2] + gt[:, 4], gt[:, 3] + gt[:, 5]])
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    ends = np.r_[starts[1:], len(frames)]
    return {int(frames[s]): (gt[s:e, 1].astype(np.int64), boxes[s:e]) for s, e in zip(starts, ends)}


def bind_object(ground_truth: GroundTruth, frame: int, box: np.ndarray, bind_iou: float = 0.3) -> int | None:
    """The GT object (id) that ``box`` (x1y1x2y2) covers in ``frame``: the highest IoU, at least ``bind_iou``."""
    if frame not in ground_truth:
        return None
    ids, boxes = ground_truth[frame]
    if not len(ids):
        return None
    iou = iou_matrix(np.asarray(box, dtype=np.float64).reshape(1, 4), boxes)[0]
    best = int(np.argmax(iou))
    return int(ids[best]) if iou[best] >= bind_iou else None


class OracleTracker(KalmanTracker):
    """Shared association + ground-truth predictions (Kalman where the truth is unknown).

    ``ground_truth``: :func:`ground_truth_boxes` of the sequence; ``bind_iou``: the least IoU between a detection
    and an annotated box for the track to follow that object.
    """

    def __init__(self, ground_truth: GroundTruth, frame_rate: float = 30.0, bind_iou: float = 0.3,
                 **kwargs) -> None:
        self.ground_truth = ground_truth
        self.bind_iou = float(bind_iou)
        super().__init__(frame_rate, **kwargs)

    def object_box(self, frame: int, object_id: int | None) -> np.ndarray | None:
        """The annotated box (x1y1x2y2) of ``object_id`` in ``frame``, or None."""
        if object_id is None or frame not in self.ground_truth:
            return None
        ids, boxes = self.ground_truth[frame]
        hit = np.flatnonzero(ids == object_id)
        return boxes[hit[0]] if len(hit) else None

    def bind(self, track: Track, box: np.ndarray) -> None:
        """Follow the object that ``box`` (the track's detection in the current frame) covers, if any, and move the
        Kalman state to that object's truth."""
        track.extra["object"] = bind_object(self.ground_truth, self.frame_id, box, self.bind_iou)
        if track.extra["object"] is not None:
            self.move_to_truth(track, self.frame_id)

    def move_to_truth(self, track: Track, frame: int) -> np.ndarray | None:
        """Set the Kalman position to the followed object's box in ``frame`` (and the velocity to its displacement
        from ``frame - 1`` when annotated there) -> that box, or None (unannotated: the state is left as it is)."""
        obj = track.extra.get("object")
        truth = self.object_box(frame, obj)
        if truth is None:
            return None
        mean, cov = track.motion
        mean = mean.copy()
        mean[:4] = xyxy_to_cxcywh(truth)
        before = self.object_box(frame - 1, obj)
        if before is not None:
            mean[4:] = mean[:4] - xyxy_to_cxcywh(before)
        track.motion = (mean, cov)
        return truth

    def init_motion(self, track: Track) -> None:
        super().init_motion(track)
        self.bind(track, track.box)

    def correct(self, track: Track, box: np.ndarray) -> None:
        super().correct(track, box)
        self.bind(track, box)

    def predict(self, tracks: Sequence[Track]) -> np.ndarray:
        boxes = super().predict(tracks)
        nxt = self.frame_id + 1  # the frame being predicted (step() increments frame_id after predicting)
        for k, t in enumerate(tracks):
            truth = self.move_to_truth(t, nxt)
            if truth is not None:
                boxes[k] = truth
        return boxes


class PastOracleTracker(OracleTracker):
    """Shared association + the object's true past extrapolated at constant velocity (see the module docstring)."""

    def predict(self, tracks: Sequence[Track]) -> np.ndarray:
        for t in tracks:
            self.move_to_truth(t, self.frame_id)  # the frame just tracked: the past, not the predicted frame
        return KalmanTracker.predict(self, tracks)
