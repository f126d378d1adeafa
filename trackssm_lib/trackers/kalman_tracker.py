"""Constant-velocity Kalman motion model with the shared association (the baseline that only swaps the motion).

State (cx, cy, w, h, vcx, vcy, vw, vh) in pixels, one step per frame; process and measurement noise scaled by the
box size as in BoT-SORT's ``KalmanFilterXYWH`` (position weight 1/20, velocity weight 1/160; the cx and w terms
scale with the box width, the cy and h terms with its height). The size velocities of tracks
that are not in the tracked state are zeroed before predicting (as in ByteTrack / BoT-SORT).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from trackssm_lib.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from trackssm_lib.ego_motion import warp_boxes
from trackssm_lib.trackers.association import BaseTracker, Track, TrackState

_NDIM = 4


class KalmanFilterXYWH:
    """Vectorised constant-velocity Kalman filter on (cx, cy, w, h)."""

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160) -> None:
        self.F = np.eye(2 * _NDIM)
        self.F[:_NDIM, _NDIM:] = np.eye(_NDIM)
        self.H = np.eye(_NDIM, 2 * _NDIM)
        self.wp = std_weight_position
        self.wv = std_weight_velocity

    @staticmethod
    def _scale(w: np.ndarray, h: np.ndarray) -> np.ndarray:
        return np.stack([w, h, w, h], axis=-1)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.asarray(z, dtype=np.float64)
        mean = np.concatenate([z, np.zeros(_NDIM)])
        s = self._scale(z[2], z[3])
        std = np.concatenate([2 * self.wp * s, 10 * self.wv * s])
        return mean, np.diag(std ** 2)

    def multi_predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self._scale(mean[:, 2], mean[:, 3])
        std = np.concatenate([self.wp * s, self.wv * s], axis=1)
        q = np.zeros((len(mean), 2 * _NDIM, 2 * _NDIM))
        idx = np.arange(2 * _NDIM)
        q[:, idx, idx] = std ** 2
        mean = mean @ self.F.T
        cov = self.F @ cov @ self.F.T + q
        return mean, cov

    def update(self, mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self._scale(mean[2], mean[3])
        r = np.diag((self.wp * s) ** 2)
        proj_mean = self.H @ mean
        proj_cov = self.H @ cov @ self.H.T + r
        gain = np.linalg.solve(proj_cov, (cov @ self.H.T).T).T
        mean = mean + gain @ (np.asarray(z, dtype=np.float64) - proj_mean)
        cov = cov - gain @ proj_cov @ gain.T
        return mean, cov


class KalmanTracker(BaseTracker):
    """Shared association + constant-velocity Kalman filter. ``update(dets)`` as in :class:`BaseTracker`."""

    def __init__(self, frame_rate: float = 30.0, std_weight_position: float = 1.0 / 20,
                 std_weight_velocity: float = 1.0 / 160, **assoc) -> None:
        self.kf = KalmanFilterXYWH(std_weight_position, std_weight_velocity)
        super().__init__(frame_rate, **assoc)

    def init_motion(self, track: Track) -> None:
        track.motion = self.kf.initiate(xyxy_to_cxcywh(track.box))

    def predict(self, tracks: Sequence[Track]) -> np.ndarray:
        if not tracks:
            return np.zeros((0, 4))
        mean = np.stack([t.motion[0] for t in tracks]).copy()
        cov = np.stack([t.motion[1] for t in tracks])
        not_tracked = np.array([t.state != TrackState.TRACKED for t in tracks])
        mean[not_tracked, 6:8] = 0.0
        mean, cov = self.kf.multi_predict(mean, cov)
        mean[:, 2:4] = np.maximum(mean[:, 2:4], 1.0)
        for i, t in enumerate(tracks):
            t.motion = (mean[i], cov[i])
            t.predicted = True
        return cxcywh_to_xyxy(mean[:, :4])

    def warp_motion(self, tracks: Sequence[Track], h: np.ndarray) -> None:
        """Ego-rotation compensation: centres through ``h``; velocities through its Jacobian ``J``; sizes and size
        velocities scaled by ``J``'s diagonal; the covariance transformed with the same linear map."""
        mean = np.stack([t.motion[0] for t in tracks])
        cov = np.stack([t.motion[1] for t in tracks])
        boxes, jac = warp_boxes(h, mean[:, :4])
        scale = np.abs(np.stack([jac[:, 0, 0], jac[:, 1, 1]], axis=1))
        linear = np.zeros((len(tracks), 2 * _NDIM, 2 * _NDIM))
        for start in (0, 4):
            linear[:, start:start + 2, start:start + 2] = jac
            linear[:, start + 2, start + 2], linear[:, start + 3, start + 3] = scale[:, 0], scale[:, 1]
        mean = np.concatenate([boxes, np.einsum("nij,nj->ni", linear[:, 4:, 4:], mean[:, 4:])], axis=1)
        cov = linear @ cov @ np.swapaxes(linear, 1, 2)
        for i, t in enumerate(tracks):
            t.motion = (mean[i], cov[i])

    def correct(self, track: Track, box: np.ndarray) -> None:
        mean, cov = track.motion
        track.motion = self.kf.update(mean, cov, xyxy_to_cxcywh(box))
