"""Multi-object trackers sharing one association (BoxMOT style: one module per tracker).

Every tracker has ``update(dets) -> tracks``: ``dets`` (N, 6) = x1, y1, x2, y2, score, class_id (pixels);
``tracks`` (M, 8) = x1, y1, x2, y2, track_id, score, class_id, det_index (:data:`TRACK_COLUMNS`).

* :class:`TrackSSMTracker` (``trackssm``): the official TrackSSM tracker, class-aware;
* :class:`KalmanTracker` (``kalman``): the same association with a constant-velocity Kalman filter;
* :class:`OracleTracker` (``oracle``): the same association predicting from the ground truth (an analysis bound);
  :class:`PastOracleTracker` (``oracle-past``): from the ground truth's past only, at constant velocity;
* :class:`BoxMOTTracker` (``boxmot:bytetrack|botsort|ocsort``): optional, needs ``pip install boxmot==19.0.0``;
* :class:`MultiCameraTracker`: one tracker per camera, one batched model call per timestamp.
"""
from trackssm_lib.trackers.association import (
    TRACK_COLUMNS,
    BaseTracker,
    Track,
    TrackState,
    iou_distance,
    iou_matrix,
    linear_assignment,
)
from trackssm_lib.trackers.boxmot_adapter import BOXMOT_TRACKERS, BoxMOTTracker, TrackerUnavailableError
from trackssm_lib.trackers.kalman_tracker import KalmanFilterXYWH, KalmanTracker
from trackssm_lib.trackers.multicamera import MultiCameraTracker
from trackssm_lib.trackers.oracle_tracker import OracleTracker, PastOracleTracker
from trackssm_lib.trackers.trackssm_tracker import TrackSSMTracker

__all__ = [
    "BOXMOT_TRACKERS", "TRACK_COLUMNS", "BaseTracker", "BoxMOTTracker", "KalmanFilterXYWH", "KalmanTracker",
    "MultiCameraTracker", "OracleTracker", "PastOracleTracker", "Track", "TrackSSMTracker", "TrackState",
    "TrackerUnavailableError",
    "iou_distance", "iou_matrix", "linear_assignment",
]
