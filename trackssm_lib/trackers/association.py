"""Association shared by every motion model: the official TrackSSM (ByteTrack-style) cascade, class-aware.

Per frame (:meth:`BaseTracker.update`), with the official thresholds as defaults:

1. detections split by score: high ``score >= high_thresh`` (0.6), low ``low_thresh < score < high_thresh`` (0.1);
2. every confirmed tracked track and every lost track (the "pool") is predicted by the motion model in ONE call
   (:meth:`BaseTracker.predict`; :class:`~trackssm_lib.trackers.multicamera.MultiCameraTracker` batches this call
   across cameras);
3. match 1: pool vs high detections, IoU distance, threshold ``match_thresh`` (0.8); lost tracks that match are
   re-activated with their id;
4. match 2: pool tracks still in the tracked state vs low detections, threshold ``second_match_thresh`` (0.5);
   tracked tracks left unmatched become lost;
5. unconfirmed tracks (born on the previous frame) vs the high detections left by match 1, threshold
   ``unconfirmed_match_thresh`` (0.7); an unmatched unconfirmed track is removed;
6. new tracks from the remaining high detections with ``score >= new_track_thresh`` (0.7); they are unconfirmed
   until their next match (confirmed at once on the first frame);
7. lost tracks not matched for more than ``max_time_lost`` frames are removed; ``max_time_lost`` =
   round(``lost_seconds`` x frame rate) (official: 30 frames at 30 fps = 1 s, i.e. 12 frames at 12 Hz);
8. duplicates between tracked and lost tracks (IoU distance < ``duplicate_thresh``, 0.15) are removed, keeping the
   longer-lived track.

Class awareness: every cost matrix is gated, a detection can only match a track of its own class (the gated cost
is above every threshold). Linear assignment solves the thresholded problem exactly as ``lap.lapjv(...,
extend_cost=True, cost_limit=thresh)`` does (each row / column may stay unmatched at cost ``thresh / 2``), with
:func:`scipy.optimize.linear_sum_assignment`.

Track ids are 1-based, small and contiguous per tracker: an id is given when a track is first confirmed (tracks
dropped while unconfirmed never consume one).
"""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from trackssm_lib.boxes import cxcywh_to_xyxy, iou_matrix, xyxy_to_cxcywh
from trackssm_lib.ego_motion import warp_boxes

# columns of the array returned by BaseTracker.update
TRACK_COLUMNS = ("x1", "y1", "x2", "y2", "track_id", "score", "class_id", "det_index")
GATED_COST = 1e3  # cost of a class-mismatched pair: above every threshold
_FORBIDDEN = 1e6  # cost of pairs above the threshold inside the extended assignment problem


class TrackState(enum.IntEnum):
    NEW = 0
    TRACKED = 1
    LOST = 2
    REMOVED = 3


@dataclass(eq=False)
class Track:
    """One track. ``box`` is x1, y1, x2, y2 in pixels: the matched detection, or the prediction while unmatched."""

    box: np.ndarray
    score: float
    class_id: int
    start_frame: int
    frame_id: int  # last frame with a matched detection
    state: TrackState = TrackState.TRACKED
    is_activated: bool = False
    track_id: int = 0  # 0 until confirmed
    det_index: int = -1  # index of the matched detection in the current frame's input, -1 otherwise
    motion: Any = None  # motion-model state (Kalman mean/cov, TrackSSM history ...)
    predicted: bool = False  # predicted in the current frame
    extra: dict = field(default_factory=dict)

    @property
    def age(self) -> int:
        return self.frame_id - self.start_frame


# --------------------------------------------------------------------------------------------- cost matrices
def iou_distance(track_boxes: np.ndarray, det_boxes: np.ndarray, track_classes: np.ndarray | None = None,
                 det_classes: np.ndarray | None = None) -> np.ndarray:
    """1 - IoU; with classes given, pairs of different classes cost :data:`GATED_COST` (never matched)."""
    cost = 1.0 - iou_matrix(track_boxes, det_boxes)
    if track_classes is not None and det_classes is not None and cost.size:
        gate = np.asarray(track_classes).reshape(-1, 1) != np.asarray(det_classes).reshape(1, -1)
        cost[gate] = GATED_COST
    return cost


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholded assignment -> (matches (K, 2) [row, col], unmatched rows, unmatched cols).

    Same problem as ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)``: pairs above ``thresh`` are forbidden
    and leaving a row or a column unmatched costs ``thresh / 2``.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), dtype=np.int64), np.arange(n), np.arange(m)
    half = thresh / 2.0
    big = np.full((n + m, m + n), _FORBIDDEN)
    big[:n, :m] = np.where(cost <= thresh, cost, _FORBIDDEN)
    big[np.arange(n), m + np.arange(n)] = half  # row i unmatched
    big[n + np.arange(m), np.arange(m)] = half  # column j unmatched
    big[n:, m:] = 0.0
    rows, cols = linear_sum_assignment(big)
    sel = (rows < n) & (cols < m)
    matches = np.column_stack([rows[sel], cols[sel]]).astype(np.int64)
    if len(matches):
        matches = matches[cost[matches[:, 0], matches[:, 1]] <= thresh]
    matched_r = set(matches[:, 0].tolist())
    matched_c = set(matches[:, 1].tolist())
    return (matches.reshape(-1, 2), np.array([i for i in range(n) if i not in matched_r], dtype=np.int64),
            np.array([j for j in range(m) if j not in matched_c], dtype=np.int64))


# ----------------------------------------------------------------------------------------------- base tracker
class BaseTracker(ABC):
    """The association above; subclasses supply the motion model (:meth:`init_motion`, :meth:`predict`,
    :meth:`correct`).

    ``update(dets)`` takes ``(N, 6)`` x1, y1, x2, y2, score, class_id and returns ``(M, 8)`` rows in the order of
    :data:`TRACK_COLUMNS`: x1, y1, x2, y2, track_id, score, class_id, det_index (the box is the matched detection's,
    det_index its row in ``dets``); only confirmed tracks matched in this frame are returned.
    """

    def __init__(self, frame_rate: float = 30.0, *, high_thresh: float = 0.6, low_thresh: float = 0.1,
                 new_track_thresh: float = 0.7, match_thresh: float = 0.8, second_match_thresh: float = 0.5,
                 unconfirmed_match_thresh: float = 0.7, duplicate_thresh: float = 0.15, lost_seconds: float = 1.0,
                 class_aware: bool = True) -> None:
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        if lost_seconds < 0:
            raise ValueError(f"lost_seconds must be >= 0, got {lost_seconds}")
        self.frame_rate = float(frame_rate)
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = new_track_thresh
        self.match_thresh = match_thresh
        self.second_match_thresh = second_match_thresh
        self.unconfirmed_match_thresh = unconfirmed_match_thresh
        self.duplicate_thresh = duplicate_thresh
        self.lost_seconds = float(lost_seconds)
        self.max_time_lost = int(round(lost_seconds * frame_rate))
        self.class_aware = class_aware
        self.reset()

    def reset(self) -> None:
        self.frame_id = 0
        self.tracked: list[Track] = []
        self.lost: list[Track] = []
        self._next_id = 1

    # ---------------------------------------------------------------- motion model interface
    @abstractmethod
    def init_motion(self, track: Track) -> None:
        """Initialise ``track.motion`` from ``track.box`` (a new track)."""

    @abstractmethod
    def predict(self, tracks: Sequence[Track]) -> np.ndarray:
        """Advance every track one frame (one batched call) -> predicted boxes (K, 4) x1y1x2y2."""

    @abstractmethod
    def correct(self, track: Track, box: np.ndarray) -> None:
        """Fold the matched detection box (x1y1x2y2) into ``track.motion``."""

    def warp_motion(self, tracks: Sequence[Track], h: np.ndarray) -> None:
        """Move the motion state of ``tracks`` through the homography ``h`` (ego-rotation compensation).

        Default: nothing (a motion model without image-coordinate state); the trackers override it.
        """

    def camera_motion(self, h: np.ndarray) -> None:
        """Ego-rotation compensation before the next ``update``: every track (tracked, unconfirmed and lost) is
        moved into the next frame's camera orientation by the homography ``h`` (:mod:`trackssm_lib.ego_motion`);
        the motion model then only has to predict the object's own motion."""
        h = np.asarray(h, dtype=np.float64)
        if h.shape != (3, 3) or not np.isfinite(h).all():
            raise ValueError(f"camera motion must be a finite 3x3 homography, got shape {h.shape}")
        tracks = self.tracked + self.lost
        if not tracks:
            return
        boxes = xyxy_to_cxcywh(np.array([t.box for t in tracks]))
        warped, _ = warp_boxes(h, boxes)
        for t, b in zip(tracks, cxcywh_to_xyxy(warped)):
            t.box = b
        self.warp_motion(tracks, h)

    # ---------------------------------------------------------------- association
    def prediction_pool(self) -> list[Track]:
        """Tracks the next frame predicts: confirmed tracked tracks, then lost tracks."""
        return [t for t in self.tracked if t.is_activated] + list(self.lost)

    def update(self, dets: np.ndarray) -> np.ndarray:
        """One frame: predict the pool, associate ``dets`` (N, 6), return (M, 8) (see the class docstring)."""
        pool = self.prediction_pool()
        boxes = self.predict(pool) if pool else np.zeros((0, 4))
        return self.step(dets, pool, boxes)

    def _costs(self, tracks: Sequence[Track], dets: np.ndarray) -> np.ndarray:
        tboxes = np.array([t.box for t in tracks]).reshape(-1, 4)
        if self.class_aware:
            return iou_distance(tboxes, dets[:, :4], np.array([t.class_id for t in tracks]), dets[:, 5])
        return iou_distance(tboxes, dets[:, :4])

    def _match(self, track: Track, dets: np.ndarray, idx: int, det_index: np.ndarray) -> None:
        self.correct(track, dets[idx, :4])
        track.box = dets[idx, :4].astype(np.float64).copy()
        track.score = float(dets[idx, 4])
        track.frame_id = self.frame_id
        track.state = TrackState.TRACKED
        track.det_index = int(det_index[idx])
        if not track.is_activated:
            self._confirm(track)

    def _confirm(self, track: Track) -> None:
        track.is_activated = True
        if track.track_id == 0:
            track.track_id = self._next_id
            self._next_id += 1

    def step(self, dets: np.ndarray, pool: Sequence[Track], boxes: np.ndarray) -> np.ndarray:
        """Associate ``dets`` with the tracks, ``pool`` having been predicted to ``boxes`` (see :meth:`update`)."""
        self.frame_id += 1
        dets = np.asarray(dets, dtype=np.float64).reshape(-1, 6)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) != len(pool):
            raise ValueError(f"{len(pool)} tracks to predict but {len(boxes)} predicted boxes")
        for t, b in zip(pool, boxes):
            t.box = b.copy()
        for t in self.tracked + self.lost:
            t.det_index = -1
        finite = np.isfinite(dets).all(axis=1)
        all_index = np.arange(len(dets))
        scores = dets[:, 4]
        hi = finite & (scores >= self.high_thresh)
        lo = finite & (scores > self.low_thresh) & (scores < self.high_thresh)
        dets_hi, idx_hi = dets[hi], all_index[hi]
        dets_lo, idx_lo = dets[lo], all_index[lo]
        pool_ids = {id(t) for t in pool}
        unconfirmed = [t for t in self.tracked if not t.is_activated and id(t) not in pool_ids]

        # match 1: pool vs high detections
        matches, u_track, u_det = linear_assignment(self._costs(pool, dets_hi), self.match_thresh)
        for it, idet in matches:
            self._match(pool[it], dets_hi, idet, idx_hi)
        # match 2: remaining tracked vs low detections
        remaining = [pool[i] for i in u_track if pool[i].state == TrackState.TRACKED]
        matches, u_rem, _ = linear_assignment(self._costs(remaining, dets_lo), self.second_match_thresh)
        for it, idet in matches:
            self._match(remaining[it], dets_lo, idet, idx_lo)
        for i in u_rem:
            remaining[i].state = TrackState.LOST
        # unconfirmed vs leftover high detections
        left, left_idx = dets_hi[u_det], idx_hi[u_det]
        matches, u_unconf, u_new = linear_assignment(self._costs(unconfirmed, left), self.unconfirmed_match_thresh)
        for it, idet in matches:
            self._match(unconfirmed[it], left, idet, left_idx)
        for i in u_unconf:
            unconfirmed[i].state = TrackState.REMOVED
        # new tracks
        new_tracks = []
        for j in u_new:
            if left[j, 4] < self.new_track_thresh:
                continue
            track = Track(box=left[j, :4].copy(), score=float(left[j, 4]), class_id=int(left[j, 5]),
                          start_frame=self.frame_id, frame_id=self.frame_id, det_index=int(left_idx[j]))
            self.init_motion(track)
            if self.frame_id == 1:
                self._confirm(track)
            new_tracks.append(track)
        # lost timeout (tracks that were lost before this frame)
        for t in self.lost:
            if t.state == TrackState.LOST and self.frame_id - t.frame_id > self.max_time_lost:
                t.state = TrackState.REMOVED

        everything = self.tracked + self.lost + new_tracks
        tracked = [t for t in everything if t.state == TrackState.TRACKED]
        lost = [t for t in everything if t.state == TrackState.LOST]
        self.tracked, self.lost = self._remove_duplicates(tracked, lost)
        for t in pool:
            t.predicted = False
        return self.output()

    def _remove_duplicates(self, tracked: list[Track], lost: list[Track]) -> tuple[list[Track], list[Track]]:
        if not tracked or not lost:
            return tracked, lost
        cost = iou_distance(np.array([t.box for t in tracked]), np.array([t.box for t in lost]),
                            np.array([t.class_id for t in tracked]) if self.class_aware else None,
                            np.array([t.class_id for t in lost]) if self.class_aware else None)
        drop_a, drop_b = set(), set()
        for p, q in zip(*np.nonzero(cost < self.duplicate_thresh)):
            if tracked[p].age > lost[q].age:
                drop_b.add(int(q))
            else:
                drop_a.add(int(p))
        for i in drop_a:
            tracked[i].state = TrackState.REMOVED
        for i in drop_b:
            lost[i].state = TrackState.REMOVED
        return ([t for i, t in enumerate(tracked) if i not in drop_a],
                [t for i, t in enumerate(lost) if i not in drop_b])

    def output(self) -> np.ndarray:
        """Confirmed tracks matched in the current frame -> (M, 8) in :data:`TRACK_COLUMNS` order."""
        rows = [[*t.box, t.track_id, t.score, t.class_id, t.det_index]
                for t in self.tracked if t.is_activated and t.frame_id == self.frame_id]
        return np.asarray(rows, dtype=np.float64).reshape(-1, len(TRACK_COLUMNS))
