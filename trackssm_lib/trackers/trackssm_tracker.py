"""TrackSSM motion model with the shared association (the official tracker, class-aware).

Each track keeps a deque of its last 5 rows ``(cx, cy, w, h, dcx, dcy, dw, dh)`` in pixels, as the official
tracker does:

* a new track starts with ``(box, 0)``;
* a prediction appends ``(pred, pred - previous row's box)``;
* a matched detection overwrites the last row with ``(det, det - box of the row before it)``; a track matched
  without having been predicted in this frame (an unconfirmed track) overwrites its last row with
  ``(det, det - its last observed box)``.

The model input is the deque padded at the END with copies of its last row up to 5 rows, normalised by the image
width (cx, w and their deltas) and height (cy, h and their deltas). The model returns the next absolute box,
normalised; non-finite outputs fall back to the last box and sizes are kept >= 1 pixel.

A camera-aware model (``num_cameras`` > 0, a project option) also reads which camera sees the track: give the
tracker its ``camera`` (a name of :data:`~trackssm_lib.constants.CAMERAS`; ``track`` takes it from the sequence
name) and the class ids it passes carry it (:meth:`~trackssm_lib.model.TrackSSM.condition_ids`).

An ego-aware model (``ego_aware``, a project option) also reads the camera's own motion into the frame being
predicted: call :meth:`TrackSSMTracker.set_ego_motion` with that frame's twist before each ``update`` (``track``
reads it from the export's ``camera.csv``); every track of the camera gets the same twist.
"""
from __future__ import annotations

import warnings
from collections import deque
from typing import Any, Sequence

import numpy as np
import torch

from trackssm_lib.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from trackssm_lib.constants import CAMERAS
from trackssm_lib.data import HISTORY, slot_of_camera  # HISTORY: official rows per track
from trackssm_lib.ego_motion import EGO_DIMS, warp_boxes
from trackssm_lib.trackers.association import BaseTracker, Track


class TrackSSMTracker(BaseTracker):
    """Shared association + TrackSSM predictions (one batched model call per frame).

    ``model``: a :class:`~trackssm_lib.model.TrackSSM` (or any callable ``predict(condition (B, 5, 8),
    class_ids (B,)) -> (B, 4)``); ``image_size``: (width, height) in pixels; ``use_class_ids``: pass the tracks'
    class ids to the model (the class offset is zero for official weights, so this changes nothing for them).
    ``camera``: the camera this tracker's sequence comes from (used by camera-aware models; a camera-aware model
    without it runs camera-agnostic, with a warning).
    """

    def __init__(self, model: Any, frame_rate: float = 30.0, image_size: tuple[float, float] = (1600, 900),
                 use_class_ids: bool = True, device: str | torch.device | None = None, camera: str | None = None,
                 **assoc) -> None:
        self.model = model
        if camera is not None and camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; choose one of {list(CAMERAS)}")
        self.camera = camera
        self.num_cameras = int(getattr(model, "num_cameras", 0) or 0)
        if self.num_cameras and camera is None:
            warnings.warn("a camera-aware TrackSSM without the tracker's camera: it runs camera-agnostic",
                          stacklevel=2)
        self._camera_offset = int(model.num_classes) * slot_of_camera(camera) if self.num_cameras else 0
        self.image_size = (float(image_size[0]), float(image_size[1]))
        if self.image_size[0] <= 0 or self.image_size[1] <= 0:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.use_class_ids = use_class_ids
        if device is None:
            params = getattr(model, "parameters", None)
            first = next(iter(params()), None) if callable(params) else None
            device = first.device if first is not None else torch.device("cpu")
        self.device = torch.device(device)
        self._norm = np.array([self.image_size[0], self.image_size[1]] * 4)
        self.ego_aware = bool(getattr(model, "ego_aware", False))
        super().__init__(frame_rate, **assoc)

    def reset(self) -> None:
        super().reset()
        self.ego = np.zeros(EGO_DIMS)
        self._ego_given = self._ego_warned = False

    def set_ego_motion(self, twist: np.ndarray) -> None:
        """The camera's motion into the frame of the next ``update`` (translation in metres and rotation vector in
        radians, in the previous frame's camera coordinates; :func:`trackssm_lib.ego_motion.camera_twists`). Read
        by ego-aware models only."""
        twist = np.asarray(twist, dtype=np.float64).reshape(-1)
        if twist.shape != (EGO_DIMS,) or not np.isfinite(twist).all():
            raise ValueError(f"the ego motion must be {EGO_DIMS} finite numbers, got {twist!r}")
        self.ego = twist
        self._ego_given = True

    # ------------------------------------------------------------------ history
    def init_motion(self, track: Track) -> None:
        c = xyxy_to_cxcywh(track.box)
        track.motion = deque([np.concatenate([c, np.zeros(4)])], maxlen=HISTORY)
        track.extra["last_obs"] = c

    def build_conditions(self, tracks: Sequence[Track]) -> np.ndarray:
        """Model inputs (K, 5, 8), normalised, padded at the end with copies of the last row."""
        out = np.empty((len(tracks), HISTORY, 8), dtype=np.float32)
        for i, t in enumerate(tracks):
            rows = list(t.motion)
            rows += [rows[-1]] * (HISTORY - len(rows))
            out[i] = np.asarray(rows) / self._norm
        return out

    def class_ids(self, tracks: Sequence[Track]) -> np.ndarray:
        """The ids the model reads: the tracks' classes, with this tracker's camera folded in for a camera-aware
        model (``class + num_classes x slot``)."""
        return np.array([t.class_id for t in tracks], dtype=np.int64) + self._camera_offset

    def apply_predictions(self, tracks: Sequence[Track], pred_norm: np.ndarray) -> np.ndarray:
        """Append the model's (K, 4) normalised predictions to the histories -> boxes (K, 4) x1y1x2y2 pixels."""
        pred = np.asarray(pred_norm, dtype=np.float64).reshape(-1, 4) * self._norm[:4]
        for i, t in enumerate(tracks):
            prev = t.motion[-1][:4]
            p = pred[i]
            if not np.isfinite(p).all():
                p = prev.copy()
            p[2:] = np.maximum(p[2:], 1.0)
            pred[i] = p
            t.motion.append(np.concatenate([p, p - prev]))
            t.predicted = True
        return cxcywh_to_xyxy(pred)

    def ego_rows(self, tracks: Sequence[Track]) -> np.ndarray | None:
        """The ego motion each track's prediction reads, (K, 6) (this camera's twist), or None for a model that does
        not read it."""
        if not self.ego_aware:
            return None
        if not self._ego_given and not self._ego_warned and tracks:
            warnings.warn("an ego-aware TrackSSM without the camera's motion (set_ego_motion): it predicts as if the "
                          "camera stood still", stacklevel=3)
            self._ego_warned = True
        return np.tile(self.ego, (len(tracks), 1))

    def run_model(self, conditions: np.ndarray, class_ids: np.ndarray | None,
                  ego: np.ndarray | None = None) -> np.ndarray:
        """One batched model call on (B, 5, 8) normalised conditions (and, for ego-aware models, (B, 6) ego
        motions) -> (B, 4) normalised boxes."""
        if len(conditions) == 0:
            return np.zeros((0, 4))
        cond = torch.from_numpy(np.ascontiguousarray(conditions, dtype=np.float32)).to(self.device)
        cls = None
        if class_ids is not None and self.use_class_ids:
            cls = torch.from_numpy(np.asarray(class_ids, dtype=np.int64)).to(self.device)
        args = (cond, cls)
        if ego is not None:
            args += (torch.from_numpy(np.asarray(ego, dtype=np.float32)).to(self.device),)
        predict = getattr(self.model, "predict", None)
        with torch.inference_mode():
            out = predict(*args) if predict is not None else self.model(*args)
        return out.detach().to("cpu", torch.float64).numpy()

    def predict(self, tracks: Sequence[Track]) -> np.ndarray:
        if not tracks:
            return np.zeros((0, 4))
        pred = self.run_model(self.build_conditions(tracks), self.class_ids(tracks), self.ego_rows(tracks))
        return self.apply_predictions(tracks, pred)

    def warp_motion(self, tracks: Sequence[Track], h: np.ndarray) -> None:
        """Ego-rotation compensation: every history row's box, the box before it (box - delta) and the last
        observation go through ``h``; deltas are recomputed as differences of warped boxes, so the history reads as
        if the camera had kept its current orientation."""
        rows = [np.asarray(t.motion) for t in tracks]
        sizes = [len(r) for r in rows]
        stacked = np.concatenate(rows)
        last_obs = np.stack([t.extra["last_obs"] for t in tracks])
        warped, _ = warp_boxes(h, np.concatenate([stacked[:, :4], stacked[:, :4] - stacked[:, 4:], last_obs]))
        n = len(stacked)
        boxes, before = warped[:n], warped[n:2 * n]
        start = 0
        for t, size, obs in zip(tracks, sizes, warped[2 * n:]):
            new_rows = np.concatenate([boxes[start:start + size], boxes[start:start + size] -
                                       before[start:start + size]], axis=1)
            t.motion = deque(list(new_rows), maxlen=HISTORY)
            t.extra["last_obs"] = obs
            start += size

    def correct(self, track: Track, box: np.ndarray) -> None:
        c = xyxy_to_cxcywh(box)
        hist = track.motion
        if track.predicted and len(hist) >= 2:
            prev = hist[-2][:4]
        else:
            prev = track.extra["last_obs"]
        hist[-1] = np.concatenate([c, c - prev])
        track.extra["last_obs"] = c
