"""Generalized IoU of paired boxes in TrackSSM's (cx, cy, w, h) layout, for the optional ``1 - GIoU`` loss term.

The official SportsMOT setting adds ``1 - GIoU`` (Rezatofighi et al., CVPR 2019) to the smooth-L1 loss. Unlike the
smooth-L1 term on normalised coordinates, GIoU does not depend on the box's scale, so small boxes (pedestrians,
distant cars) weigh as much as large ones; it is what the IoU-gated association of the tracker sees.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _corners(boxes: Tensor) -> Tensor:
    """(..., 4) centre/size boxes to corners, differentiably; negative sizes are clamped to 0 (an empty box).
    (The tracker's float64 NumPy converter is ``trackers.kalman_tracker.cxcywh_to_xyxy``.)"""
    cx, cy, w, h = boxes.unbind(-1)
    half_w, half_h = w.clamp(min=0) / 2, h.clamp(min=0) / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def generalized_iou(a: Tensor, b: Tensor, eps: float = 1e-9) -> Tensor:
    """GIoU of paired (..., 4) cx cy w h boxes, in [-1, 1]: IoU - (enclosing area - union) / enclosing area."""
    if a.shape != b.shape or a.shape[-1] != 4:
        raise ValueError(f"generalized_iou wants two (..., 4) tensors of one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a, b = _corners(a), _corners(b)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    inter_wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = area_a + area_b - inter
    hull_wh = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    return inter / (union + eps) - (hull - union) / (hull + eps)


__all__ = ["generalized_iou"]
