"""Interpolation to the 12 Hz camera frames: spans, no bridging, slerp, linear2d layout, hold-out error."""
from __future__ import annotations

import numpy as np
import pytest
from pyquaternion import Quaternion

from trackssm_lib.frames import camera_frames, scene_annotations
from trackssm_lib.geometry import slerp
from trackssm_lib.holdout import holdout_interpolation_error
from trackssm_lib.interpolation import LINEAR2D_STEPS, sequence_boxes


def test_slerp_matches_pyquaternion():
    rng = np.random.default_rng(1)
    q0, q1 = rng.normal(size=(200, 4)), rng.normal(size=(200, 4))
    q1[:5] = q0[:5] * 1.0001  # nearly identical rotations take the linear branch
    amount = rng.uniform(0, 1, 200)
    ours = slerp(q0, q1, amount)
    ref = np.array([Quaternion.slerp(Quaternion(a), Quaternion(b), t).q for a, b, t in zip(q0, q1, amount)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def _check_spans(nusc, scene, camera):
    """Every 3d box of a sweep has annotations of its instance at both keyframes around the sweep."""
    ann = scene_annotations(nusc, scene)
    cam = camera_frames(nusc, scene, camera, ann)
    _, boxes = sequence_boxes(nusc, scene, camera, "3d", "exact", tracked_only=False, annotations=ann, cam=cam)
    inst_col = {tok: i for i, tok in enumerate(ann.instance_tokens)}
    cols = np.array([inst_col[t] for t in boxes.instance_token])
    s1 = cam.sample_index[boxes.frame - 1]
    present = ann.ann_index >= 0
    assert np.all(present[s1, cols]), "a box at a frame whose (next) keyframe lacks the instance"
    sweep = ~boxes.is_keyframe
    assert np.all(s1[sweep] >= 1)
    assert np.all(present[s1[sweep] - 1, cols[sweep]]), "a sweep box bridges a keyframe without the instance"
    assert np.array_equal(boxes.is_keyframe, cam.is_key_frame[boxes.frame - 1])
    return ann, cam, boxes


def test_3d_stays_inside_annotated_spans_real(real_nusc):
    for camera in ("CAM_FRONT", "CAM_BACK_LEFT"):
        _check_spans(real_nusc, "scene-0916", camera)


def test_3d_stays_inside_annotated_spans_synthetic(synth_nusc):
    for scene in synth_nusc.scene:
        _check_spans(synth_nusc, scene["name"], "CAM_FRONT")


def test_devkit_extends_entering_instances_3d_does_not(real_nusc):
    _, boxes_3d = sequence_boxes(real_nusc, "scene-0916", "CAM_FRONT", "3d", "exact")
    _, boxes_dk = sequence_boxes(real_nusc, "scene-0916", "CAM_FRONT", "devkit", "exact")
    key3d = set(zip(boxes_3d.frame.tolist(), boxes_3d.instance_token.tolist()))
    keydk = set(zip(boxes_dk.frame.tolist(), boxes_dk.instance_token.tolist()))
    assert key3d < keydk  # devkit adds boxes before an instance's first annotation; 3d never does


def test_keyframe_boxes_identical_across_modes(real_nusc):
    _, b3 = sequence_boxes(real_nusc, "scene-0916", "CAM_FRONT_RIGHT", "3d", "exact")
    frames2d, b2 = sequence_boxes(real_nusc, "scene-0916", "CAM_FRONT_RIGHT", "linear2d", "exact")
    k3 = b3.select(b3.is_keyframe)
    k2 = b2.select(b2.is_keyframe)
    cam = camera_frames(real_nusc, "scene-0916", "CAM_FRONT_RIGHT")
    n_key = int(cam.is_key_frame.sum())
    assert len(frames2d) == LINEAR2D_STEPS * (n_key - 1) + 1
    assert np.all(frames2d.is_key_frame == ((frames2d.frame - 1) % LINEAR2D_STEPS == 0))
    # same keyframe boxes, frames renumbered onto the virtual timeline
    key_frame_numbers = np.flatnonzero(cam.is_key_frame) + 1
    virtual = {f: i * LINEAR2D_STEPS + 1 for i, f in enumerate(key_frame_numbers)}
    a = sorted((virtual[f], t, tuple(np.round(b, 6))) for f, t, b in zip(k3.frame, k3.instance_token, k3.boxes))
    b = sorted((f, t, tuple(np.round(x, 6))) for f, t, x in zip(k2.frame, k2.instance_token, k2.boxes))
    assert a == b


def test_holdout_3d_beats_linear2d_on_real_data(real_nusc):
    rows = {(r["mode"], r["class_name"]): r for r in holdout_interpolation_error(real_nusc, ["scene-0916"])}
    r3, r2 = rows[("3d", "all")], rows[("linear2d", "all")]
    assert r3["n"] == r2["n"] > 500
    assert r3["mean_center_error_px"] < r2["mean_center_error_px"]
    assert r3["mean_iou"] > r2["mean_iou"]
    assert 0 < r2["mean_iou"] < 1


def test_holdout_rejects_unknown_mode(real_nusc):
    with pytest.raises(ValueError, match="cubic"):
        holdout_interpolation_error(real_nusc, ["scene-0916"], modes=("cubic",))
