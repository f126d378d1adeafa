"""Hold-out test of interpolation: every other keyframe is hidden and predicted from its two neighbours.

For a held-out keyframe k of a camera, with neighbours k-1 and k+1 (one second apart):
- ``3d``: centre/size lerp and rotation slerp between the annotations at k-1 and k+1 at the camera frame's
  timestamp, projected with frame k's own ego pose and calibration;
- ``devkit``: ``get_boxes``' rule with k-1 as previous and k+1 as next keyframe (size of the next annotation;
  an instance missing at k-1 gets its k+1 box unchanged);
- ``linear2d``: the midpoint of the projected 2D boxes at k-1 and k+1.
The truth is the annotation at k projected the same way. Scores are computed on the boxes every mode predicts
(instance annotated and visible at k-1, k and k+1), so modes are compared on identical boxes; per mode,
``n_predicted`` also counts its boxes outside that common set.
"""
from __future__ import annotations

import numpy as np
from nuscenes.nuscenes import NuScenes

from trackssm_lib.boxes import center_distance, paired_iou
from trackssm_lib.constants import CAMERAS, CLASS_NAMES
from trackssm_lib.frames import camera_frames, check_cameras, scene_annotations
from trackssm_lib.interpolation import INTERP_MODES, check_interp, interpolate_3d, project_at_frames


def _camera_holdout(ann, cam, modes, clip):
    """Per held-out box: class name, truth box and each mode's prediction (NaN where it predicts none)."""
    kf = np.flatnonzero(cam.is_key_frame)
    held = np.arange(1, len(kf) - 1, 2)
    if held.size == 0:
        return None
    present = ann.ann_index >= 0
    s_prev, s_mid, s_next = (cam.sample_index[kf[held + d]] for d in (-1, 0, 1))
    hi, ii = np.nonzero(present[s_mid] & (present[s_prev] | present[s_next]))
    frame = kf[held[hi]]
    a_mid = ann.ann_index[s_mid[hi], ii]
    truth, ok = project_at_frames(cam, frame, ann.translation[a_mid], ann.size[a_mid], ann.rotation[a_mid], clip)
    hi, ii, frame, truth = hi[ok], ii[ok], frame[ok], truth[ok]
    a0 = ann.ann_index[s_prev[hi], ii]
    a1 = ann.ann_index[s_next[hi], ii]
    both = (a0 >= 0) & (a1 >= 0)
    preds = {m: np.full((len(hi), 4), np.nan) for m in modes}
    t0, t1 = ann.sample_times[s_prev[hi]], ann.sample_times[s_next[hi]]
    amount = (np.clip(cam.timestamps[frame], t0, t1) - t0) / np.maximum(t1 - t0, 1)
    for mode in ("3d", "devkit"):
        if mode not in modes:
            continue
        sel = np.flatnonzero(both)
        c, s, r = interpolate_3d(ann, a0[sel], a1[sel], amount[sel], size_from_next=(mode == "devkit"))
        boxes, valid = project_at_frames(cam, frame[sel], c, s, r, clip)
        preds[mode][sel[valid]] = boxes[valid]
        if mode == "devkit":
            only_next = np.flatnonzero((a0 < 0) & (a1 >= 0))
            boxes, valid = project_at_frames(cam, frame[only_next], ann.translation[a1[only_next]],
                                             ann.size[a1[only_next]], ann.rotation[a1[only_next]], clip)
            preds[mode][only_next[valid]] = boxes[valid]
    if "linear2d" in modes:
        sel = np.flatnonzero(both)
        ends = []
        for side, rows in ((-1, a0[sel]), (1, a1[sel])):
            f = kf[held[hi[sel]] + side]
            ends.append(project_at_frames(cam, f, ann.translation[rows], ann.size[rows], ann.rotation[rows], clip))
        valid = ends[0][1] & ends[1][1]
        preds["linear2d"][sel[valid]] = (ends[0][0][valid] + ends[1][0][valid]) / 2
    classes = ann.class_names[ii]
    return classes, truth, preds


def holdout_interpolation_error(nusc: NuScenes, scene_names: list[str], cameras=CAMERAS,
                                modes=INTERP_MODES, clip: str = "exact") -> list[dict]:
    """Rows {mode, class_name, n, mean/median_center_error_px, mean_iou, n_truth, n_predicted} incl. 'all'."""
    modes = tuple(check_interp(m) for m in modes)
    cameras = check_cameras(cameras)
    classes, truths, preds = [], [], {m: [] for m in modes}
    for scene in scene_names:
        ann = scene_annotations(nusc, scene)
        for camera in cameras:
            res = _camera_holdout(ann, camera_frames(nusc, scene, camera, ann), modes, clip)
            if res is None:
                continue
            classes.append(res[0])
            truths.append(res[1])
            for m in modes:
                preds[m].append(res[2][m])
    if not truths:
        return []
    cls = np.concatenate(classes)
    truth = np.concatenate(truths)
    pred = {m: np.concatenate(preds[m]) for m in modes}
    tracked = cls != ""
    common = tracked & np.all([~np.isnan(pred[m][:, 0]) for m in modes], axis=0)
    rows = []
    for mode in modes:
        err, iou = center_distance(pred[mode], truth), paired_iou(pred[mode], truth)
        for name in CLASS_NAMES + ("all",):
            in_class = tracked if name == "all" else cls == name
            sel = common & in_class
            if not in_class.any():
                continue
            rows.append({
                "mode": mode, "class_name": name, "n": int(sel.sum()),
                "mean_center_error_px": float(np.mean(err[sel])) if sel.any() else float("nan"),
                "median_center_error_px": float(np.median(err[sel])) if sel.any() else float("nan"),
                "mean_iou": float(np.mean(iou[sel])) if sel.any() else float("nan"),
                "n_truth": int(in_class.sum()),
                "n_predicted": int((in_class & ~np.isnan(pred[mode][:, 0])).sum()),
            })
    return rows
