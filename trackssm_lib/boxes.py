"""2D box arithmetic shared by interpolation checks, training metrics, association and plots.

Boxes are (x1, y1, x2, y2) unless a function says otherwise; degenerate boxes (no area) have IoU 0.
"""
from __future__ import annotations

import numpy as np


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_cxcywh(box: np.ndarray) -> np.ndarray:
    """(..., 4) x1, y1, x2, y2 -> cx, cy, w, h."""
    box = np.asarray(box, dtype=np.float64)
    return np.stack([(box[..., 0] + box[..., 2]) / 2, (box[..., 1] + box[..., 3]) / 2,
                     box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]], axis=-1)


def cxcywh_to_xyxy(box: np.ndarray) -> np.ndarray:
    """(..., 4) cx, cy, w, h -> x1, y1, x2, y2."""
    box = np.asarray(box, dtype=np.float64)
    return np.stack([box[..., 0] - box[..., 2] / 2, box[..., 1] - box[..., 3] / 2,
                     box[..., 0] + box[..., 2] / 2, box[..., 1] + box[..., 3] / 2], axis=-1)


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (A, 4) x (B, 4) boxes -> (A, B)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    return _ratio(inter, _area(a)[:, None] + _area(b)[None, :] - inter)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row-paired boxes (N, 4) and (N, 4) -> (N,)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    return _ratio(inter, _area(a) + _area(b) - inter)


def center_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between the centres of row-paired boxes -> (N,)."""
    return np.hypot((a[:, 0] + a[:, 2] - b[:, 0] - b[:, 2]) / 2, (a[:, 1] + a[:, 3] - b[:, 1] - b[:, 3]) / 2)
