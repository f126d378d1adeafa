"""Boxes for every frame of a camera sequence: keyframe annotations interpolated to the real camera frames.

Modes:
- ``3d`` (default): on keyframes the annotations as they are; on a sweep, for each instance annotated at BOTH
  keyframes around it (the previous sample and the sweep's own, i.e. next, sample), the centre and size are
  linearly interpolated and the rotation slerped at the sweep's timestamp; then projected with the sweep's own ego
  pose and calibration. No box outside an instance's annotated span, no bridging of keyframes where it is missing.
- ``devkit``: exactly ``NuScenes.get_boxes``: like ``3d`` for instances at both keyframes (size of the next
  one), but an instance present only at the next keyframe gets that box unchanged; one present only at the
  previous keyframe is dropped.
- ``linear2d``: the naive baseline kept for comparison: keyframe boxes projected, then x1, y1, x2, y2 linearly
  interpolated in the image on 6 virtual frames per keyframe interval (frames not tied to real camera frames).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nuscenes.nuscenes import NuScenes

from trackssm_lib.constants import CLASS_IDS
from trackssm_lib.frames import CameraFrames, SceneAnnotations, camera_frames, scene_annotations
from trackssm_lib.geometry import slerp
from trackssm_lib.projection import project_boxes

INTERP_MODES = ("3d", "devkit", "linear2d")
LINEAR2D_STEPS = 6  # virtual frames per keyframe interval in ``linear2d`` mode (12 Hz / 2 Hz)


@dataclass
class SequenceFrames:
    """The frames of an exported sequence (real camera frames, or virtual ones for ``linear2d``)."""

    frame: np.ndarray          # (F,) 1-based
    tokens: np.ndarray         # sample_data tokens ('' for virtual frames)
    timestamps: np.ndarray     # int64 microseconds (interpolated for virtual frames)
    is_key_frame: np.ndarray
    filenames: np.ndarray      # ('' for virtual frames)

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class FrameBoxes:
    """2D boxes of a sequence, one row per (frame, instance)."""

    frame: np.ndarray           # (M,) 1-based frame number
    instance_token: np.ndarray
    category_name: np.ndarray
    class_name: np.ndarray      # tracking class, '' when not tracked
    class_id: np.ndarray        # -1 when not tracked
    boxes: np.ndarray           # (M, 4) x1, y1, x2, y2 pixels
    visibility: np.ndarray      # (M,) 1..4
    is_keyframe: np.ndarray     # (M,) True when the box is an annotated keyframe box

    def __len__(self) -> int:
        return len(self.frame)

    def select(self, mask: np.ndarray) -> "FrameBoxes":
        return FrameBoxes(**{k: v[mask] for k, v in vars(self).items()})


def check_interp(interp: str) -> str:
    if interp not in INTERP_MODES:
        raise ValueError(f"unknown interpolation mode {interp!r}; expected one of {INTERP_MODES}")
    return interp


def interpolate_3d(ann: SceneAnnotations, a0: np.ndarray, a1: np.ndarray, amount: np.ndarray,
                   size_from_next: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres, sizes and rotations between annotation rows a0 and a1 at fractions ``amount`` (clipped to [0, 1])."""
    amount = np.clip(amount, 0.0, 1.0)[:, None]
    centers = ann.translation[a0] + amount * (ann.translation[a1] - ann.translation[a0])
    sizes = ann.size[a1] if size_from_next else ann.size[a0] + amount * (ann.size[a1] - ann.size[a0])
    rotations = slerp(ann.rotation[a0], ann.rotation[a1], amount[:, 0])
    return centers, sizes, rotations


def _frame_annotation_pairs(ann: SceneAnnotations, cam: CameraFrames, interp: str):
    """(frame index, instance, annotation row at the frame's sample, row at the previous sample or -1)."""
    present = ann.ann_index >= 0
    s1 = cam.sample_index
    s0 = s1 - 1
    key = cam.is_key_frame
    cur = present[s1]
    prev = present[np.maximum(s0, 0)] & (s0 >= 0)[:, None] & ~key[:, None]
    mask = cur & (key[:, None] | prev) if interp == "3d" else cur
    fi, ii = np.nonzero(mask)
    a1 = ann.ann_index[s1[fi], ii]
    a0 = np.where(prev[fi, ii], ann.ann_index[np.maximum(s0[fi], 0), ii], -1)
    return fi, ii, a1, a0


def _boxes_3d_at_frames(ann: SceneAnnotations, cam: CameraFrames, interp: str):
    fi, ii, a1, a0 = _frame_annotation_pairs(ann, cam, interp)
    centers, sizes, rotations = ann.translation[a1], ann.size[a1], ann.rotation[a1].copy()
    vis = ann.visibility[a1].copy()
    mid = np.flatnonzero(a0 >= 0)
    if mid.size:
        s1 = cam.sample_index[fi[mid]]
        t0, t1 = ann.sample_times[s1 - 1], ann.sample_times[s1]
        t = np.clip(cam.timestamps[fi[mid]], t0, t1)
        amount = (t - t0) / np.maximum(t1 - t0, 1)
        c, s, r = interpolate_3d(ann, a0[mid], a1[mid], amount, size_from_next=(interp == "devkit"))
        centers, sizes = centers.copy(), sizes.copy()
        centers[mid], sizes[mid], rotations[mid] = c, s, r
        if interp == "3d":
            vis[mid] = np.where(amount < 0.5, ann.visibility[a0[mid]], ann.visibility[a1[mid]])
    return fi, ii, centers, sizes, rotations, vis


def project_at_frames(cam: CameraFrames, fi: np.ndarray, centers, sizes, rotations, clip: str):
    """Project boxes, each with the pose and calibration of its frame ``fi``."""
    return project_boxes(centers, sizes, rotations, cam.ego_translation[fi], cam.ego_rotation[fi],
                         cam.cam_translation[fi], cam.cam_rotation[fi], cam.intrinsic[fi], clip=clip)


def _make_boxes(ann: SceneAnnotations, frame: np.ndarray, ii: np.ndarray, boxes: np.ndarray, vis: np.ndarray,
                is_keyframe: np.ndarray) -> FrameBoxes:
    categories = ann.category_names[ii]
    classes = ann.class_names[ii]
    return FrameBoxes(
        frame=frame.astype(np.int64), instance_token=ann.instance_tokens[ii], category_name=categories,
        class_name=classes, class_id=np.array([CLASS_IDS.get(c, -1) for c in classes], dtype=np.int64),
        boxes=boxes, visibility=vis.astype(np.int64), is_keyframe=is_keyframe.astype(bool),
    )


def camera_sequence_frames(cam: CameraFrames) -> SequenceFrames:
    return SequenceFrames(frame=np.arange(1, len(cam) + 1), tokens=cam.tokens, timestamps=cam.timestamps,
                          is_key_frame=cam.is_key_frame, filenames=cam.filenames)


def _linear2d(ann: SceneAnnotations, cam: CameraFrames, clip: str) -> tuple[SequenceFrames, FrameBoxes]:
    kf = np.flatnonzero(cam.is_key_frame)
    n_inst = len(ann.instance_tokens)
    dense = np.full((len(kf), n_inst, 4), np.nan)
    dense_vis = np.zeros((len(kf), n_inst), dtype=np.int64)
    fi, ii, centers, sizes, rotations, vis = _boxes_3d_at_frames(ann, cam, "3d")
    on_key = cam.is_key_frame[fi]
    boxes, valid = project_at_frames(cam, fi[on_key], centers[on_key], sizes[on_key], rotations[on_key], clip)
    k_of_frame = np.full(len(cam), -1)
    k_of_frame[kf] = np.arange(len(kf))
    k, inst = k_of_frame[fi[on_key]][valid], ii[on_key][valid]
    dense[k, inst] = boxes[valid]
    dense_vis[k, inst] = vis[on_key][valid]
    steps = LINEAR2D_STEPS
    n_frames = steps * (len(kf) - 1) + 1 if len(kf) else 0
    parts = [(k * steps + 1, inst, dense[k, inst], dense_vis[k, inst], np.ones(len(k), bool))]
    both = ~np.isnan(dense[:-1, :, 0]) & ~np.isnan(dense[1:, :, 0])
    kk, jj = np.nonzero(both)
    for j in range(1, steps):
        w = j / steps
        b = (1 - w) * dense[kk, jj] + w * dense[kk + 1, jj]
        v = dense_vis[kk, jj] if w < 0.5 else dense_vis[kk + 1, jj]
        parts.append((kk * steps + 1 + j, jj, b, v, np.zeros(len(kk), bool)))
    frame, inst, bx, vv, key = (np.concatenate([p[i] for p in parts]) for i in range(5))
    order = np.lexsort((inst, frame))
    out = _make_boxes(ann, frame[order], inst[order], bx[order].reshape(-1, 4), vv[order], key[order])
    vframe = np.arange(1, n_frames + 1)
    kpos = (vframe - 1) // steps
    frac = ((vframe - 1) % steps) / steps
    kt = cam.timestamps[kf].astype(np.float64)
    times = kt[kpos] + frac * (kt[np.minimum(kpos + 1, len(kf) - 1)] - kt[kpos])
    is_key = frac == 0
    tokens = np.array([""] * n_frames, dtype=object)
    filenames = np.array([""] * n_frames, dtype=object)
    tokens[is_key], filenames[is_key] = cam.tokens[kf], cam.filenames[kf]
    frames = SequenceFrames(frame=vframe, tokens=tokens, timestamps=np.round(times).astype(np.int64),
                            is_key_frame=is_key, filenames=filenames)
    return frames, out


def sequence_boxes(nusc: NuScenes, scene_name: str, channel: str, interp: str = "3d", clip: str = "exact",
                   tracked_only: bool = True, annotations: SceneAnnotations | None = None,
                   cam: CameraFrames | None = None) -> tuple[SequenceFrames, FrameBoxes]:
    """Frames and 2D boxes of one camera sequence (boxes with no area in the image are left out)."""
    check_interp(interp)
    ann = annotations if annotations is not None else scene_annotations(nusc, scene_name)
    cam = cam if cam is not None else camera_frames(nusc, scene_name, channel, ann)
    if interp == "linear2d":
        frames, boxes = _linear2d(ann, cam, clip)
    else:
        fi, ii, centers, sizes, rotations, vis = _boxes_3d_at_frames(ann, cam, interp)
        projected, valid = project_at_frames(cam, fi, centers, sizes, rotations, clip)
        frames = camera_sequence_frames(cam)
        boxes = _make_boxes(ann, fi[valid] + 1, ii[valid], projected[valid], vis[valid],
                            cam.is_key_frame[fi[valid]])
    if tracked_only:
        boxes = boxes.select(boxes.class_id >= 0)
    return frames, boxes


def sample_data_boxes(nusc: NuScenes, sd_token: str, interp: str = "3d", clip: str = "exact",
                      tracked_only: bool = True) -> FrameBoxes:
    """Boxes of one camera frame (its ``frame`` field is 0); ``linear2d`` only exists on keyframes."""
    sd = nusc.get("sample_data", sd_token)
    scene = nusc.get("scene", nusc.get("sample", sd["sample_token"])["scene_token"])
    frames, boxes = sequence_boxes(nusc, scene["name"], sd["channel"], interp, clip, tracked_only)
    hit = np.flatnonzero(frames.tokens == sd_token)
    if hit.size == 0:
        raise ValueError(f"sample_data {sd_token} is not a frame of the {interp} sequence of {scene['name']}")
    out = boxes.select(boxes.frame == frames.frame[hit[0]])
    out.frame = np.zeros(len(out), dtype=np.int64)
    return out
