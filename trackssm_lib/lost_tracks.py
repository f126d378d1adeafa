"""Why confirmed tracks become lost: every tracked -> lost transition of a tracker, labelled by what the object's
detection was in that frame.

Identity switches (:mod:`trackssm_lib.switch_analysis`) are where a lost track ends; this module looks at where it
starts. While a tracker runs (:func:`trackssm_lib.tracking.track_scene` with a :class:`LostTrackRecorder`), each
track is bound after every match to the ground-truth object its detection covers (the annotated box of that frame
with the highest IoU, at least ``bind_iou`` = 0.3, as the oracle tracker binds). When a confirmed track goes from
tracked to lost, the transition gets the first cause that applies (:data:`LOSS_CAUSES`):

``false_positive_track``
    the track follows no annotated object;
``unannotated``
    its object is not annotated in this frame (out of view, occluded, or between keyframes without annotation);
``no_detection``
    no detection of the track's class covers the object's box with IoU >= 0.5 (missed, or detected as another
    class);
``below_low_thresh``
    the object's detection scores at most ``low_thresh`` (0.1): no association step sees it;
``taken_by_other_track``
    the object's detection was matched to another track;
``high_prediction_miss``
    a high-score detection (match 1) whose IoU with the track's predicted box is below ``1 - match_thresh`` (0.2);
``low_prediction_miss``
    a low-score detection (match 2) whose IoU with the predicted box is below ``1 - second_match_thresh`` (0.5);
``other``
    none of these (the assignment preferred another pairing).

The first four are the detector's or the annotation's doing and the same for every motion model; the last four are
what a motion model causes (:data:`MOTION_CAUSES`). A loss is *re-acquired* when the same track is matched again
later (before the lost timeout removes it). The object's detection is the one of the track's class with the highest
IoU with the object's box.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from tqdm.auto import tqdm

from trackssm_lib.boxes import iou_matrix
from trackssm_lib.trackers.association import BaseTracker, Track, TrackState
from trackssm_lib.trackers.oracle_tracker import GroundTruth, bind_object, ground_truth_boxes

LOSS_CAUSES: tuple[str, ...] = ("false_positive_track", "unannotated", "no_detection", "below_low_thresh",
                                "taken_by_other_track", "high_prediction_miss", "low_prediction_miss", "other")
MOTION_CAUSES: tuple[str, ...] = LOSS_CAUSES[4:]
DETECTION_IOU = 0.5  # a detection "of the object": its class, IoU >= 0.5 with the object's box (TrackEval's CLEAR)
_BOUND = "lost_tracks_object"  # Track.extra key of the bound GT object


def classify_loss(tracker: BaseTracker, track: Track, dets: np.ndarray, ground_truth: GroundTruth) -> str:
    """The cause (:data:`LOSS_CAUSES`) of ``track`` becoming lost in the tracker's current frame.

    Call right after the update that lost it: ``track.box`` is then its prediction for this frame and every other
    track's ``det_index`` points at the row of ``dets`` (the update's input) it matched.
    """
    obj = track.extra.get(_BOUND)
    if obj is None:
        return "false_positive_track"
    ids, boxes = ground_truth.get(tracker.frame_id, (np.zeros(0), np.zeros((0, 4))))
    hit = np.flatnonzero(ids == obj)
    if not len(hit):
        return "unannotated"
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 6)
    rows = np.flatnonzero((dets[:, 5] == track.class_id) & np.isfinite(dets).all(axis=1))
    if not len(rows):
        return "no_detection"
    overlap = iou_matrix(boxes[hit[0]].reshape(1, 4), dets[rows, :4])[0]
    if overlap.max() < DETECTION_IOU:
        return "no_detection"
    row = int(rows[int(np.argmax(overlap))])
    score = dets[row, 4]
    if score <= tracker.low_thresh:
        return "below_low_thresh"
    if any(t is not track and t.det_index == row for t in tracker.tracked):
        return "taken_by_other_track"
    predicted = iou_matrix(np.asarray(track.box, dtype=np.float64).reshape(1, 4), dets[row, :4].reshape(1, 4))[0, 0]
    if score >= tracker.high_thresh:
        return "high_prediction_miss" if predicted < 1.0 - tracker.match_thresh else "other"
    return "low_prediction_miss" if predicted < 1.0 - tracker.second_match_thresh else "other"


class LostTrackRecorder:
    """Observer for :func:`~trackssm_lib.tracking.track_scene`: binds tracks to GT objects and records every
    tracked -> lost transition of a confirmed track with its cause.

    ``ground_truth``: {sequence: :func:`~trackssm_lib.trackers.oracle_tracker.ground_truth_boxes`}.
    """

    def __init__(self, ground_truth: Mapping[str, GroundTruth], bind_iou: float = 0.3) -> None:
        self.ground_truth = dict(ground_truth)
        self.bind_iou = float(bind_iou)
        self.events: list[dict[str, Any]] = []  # sequence, frame, class_id, cause, track (the Track object)
        self._tracked: dict[str, list[Track]] = {}

    def before_update(self, frame: int, trackers: Mapping[str, BaseTracker]) -> None:
        self._tracked = {s: [t for t in trk.tracked if t.is_activated and t.state == TrackState.TRACKED]
                         for s, trk in trackers.items()}

    def after_update(self, frame: int, trackers: Mapping[str, BaseTracker], dets: Mapping[str, np.ndarray]) -> None:
        for seq, trk in trackers.items():
            gt = self.ground_truth[seq]
            for t in self._tracked.get(seq, []):
                if t.state == TrackState.LOST:
                    self.events.append({"sequence": seq, "frame": trk.frame_id, "class_id": t.class_id,
                                        "cause": classify_loss(trk, t, dets[seq], gt), "track": t})
            for t in trk.tracked:  # matched in this frame (new tracks included): box = the detection
                if t.frame_id == trk.frame_id:
                    t.extra[_BOUND] = bind_object(gt, trk.frame_id, t.box, self.bind_iou)

    def summary(self) -> dict[str, Any]:
        """{``lost``: {cause: n}, ``reacquired``: {cause: n}, ``total``, ``motion_caused``} over every event so far
        (a loss is re-acquired when its track was matched again after it)."""
        lost = Counter(e["cause"] for e in self.events)
        back = Counter(e["cause"] for e in self.events if e["track"].frame_id > e["frame"])
        return {"lost": {c: lost.get(c, 0) for c in LOSS_CAUSES},
                "reacquired": {c: back.get(c, 0) for c in LOSS_CAUSES},
                "total": len(self.events), "motion_caused": sum(lost.get(c, 0) for c in MOTION_CAUSES)}


def lost_track_causes(data_dir: str | Path, split: str, tracker: str = "kalman", detections: str | Path = "noisy",
                      checkpoint: str | Path | None = None, seed: int = 0, progress: bool = True,
                      **assoc: Any) -> dict[str, Any]:
    """Run ``tracker`` (``kalman``, ``trackssm`` with ``checkpoint``, ``oracle``) on every sequence of ``split``
    exactly as ``python -m trackssm_lib track`` does (cameras of a scene together, same detections and seed) and
    return :meth:`LostTrackRecorder.summary` with the tracker's settings. Needs each sequence's ``gt/gt.txt``."""
    from trackssm_lib.data import read_seqinfo
    from trackssm_lib.tracking import (TrackingError, group_scenes, load_model, parse_tracker, require_ground_truth,
                                       split_dirs, track_scene)

    kind, name = parse_tracker(tracker)
    if kind == "boxmot":
        raise TrackingError("lost-track causes need the shared association (trackssm, kalman or oracle), not BoxMOT")
    if checkpoint is not None and kind != "trackssm":
        raise TrackingError(f"a checkpoint is only used by the trackssm tracker, not {tracker!r}")
    seq_dirs = split_dirs(data_dir, split)
    require_ground_truth(seq_dirs, "lost-track causes need the ground truth")
    names = {d: str(read_seqinfo(d).get("name", d.name)) for d in seq_dirs}
    recorder = LostTrackRecorder({names[d]: ground_truth_boxes(d) for d in seq_dirs})
    model = load_model(checkpoint, seed=seed) if kind == "trackssm" else None
    for dirs in tqdm(group_scenes(seq_dirs).values(), desc=f"lost tracks {tracker}", unit="scene", disable=not progress,
                     file=sys.stderr):
        track_scene(dirs, kind, name, detections, model, seed, observer=recorder, **assoc)
    return {"tracker": tracker, "checkpoint": None if checkpoint is None else str(checkpoint),
            "detections": str(detections), "seed": seed, "split": split, "sequences": len(seq_dirs),
            **recorder.summary()}


__all__ = ["DETECTION_IOU", "LOSS_CAUSES", "MOTION_CAUSES", "LostTrackRecorder", "bind_object", "classify_loss",
           "lost_track_causes"]
