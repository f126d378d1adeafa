"""Projection: devkit mode reproduces the devkit box for box; exact mode is right on hand-built cases."""
from __future__ import annotations

import numpy as np
import pytest

from trackssm_lib.constants import CAMERAS
from trackssm_lib.devkit_reference import devkit_frame_boxes, devkit_keyframe_boxes
from trackssm_lib.frames import camera_frames, scene_annotations
from trackssm_lib.interpolation import sequence_boxes
from trackssm_lib.projection import project_boxes

TOL_PX = 0.01


def _compare_with_devkit(nusc, scene_name, camera, frames_to_check):
    """Our devkit/devkit boxes vs the devkit, per frame and annotation; returns the number of boxes compared."""
    ann = scene_annotations(nusc, scene_name)
    cam = camera_frames(nusc, scene_name, camera, ann)
    _, ours = sequence_boxes(nusc, scene_name, camera, "devkit", "devkit", tracked_only=False,
                             annotations=ann, cam=cam)
    compared = 0
    for f in frames_to_check(cam):
        token = cam.tokens[f]
        reference = devkit_keyframe_boxes(nusc, token) if cam.is_key_frame[f] else devkit_frame_boxes(nusc, token)
        reference = {nusc.get("sample_annotation", a)["instance_token"]: b for a, b in reference.items()
                     if b is not None and b[2] > b[0] and b[3] > b[1]}
        sel = ours.frame == f + 1
        mine = dict(zip(ours.instance_token[sel], ours.boxes[sel]))
        assert set(mine) == set(reference), f"{camera} frame {f + 1}: different boxes kept"
        for inst, box in reference.items():
            np.testing.assert_allclose(mine[inst], box, atol=TOL_PX, rtol=0,
                                       err_msg=f"{scene_name} {camera} frame {f + 1} instance {inst}")
            compared += 1
    return compared


def _keyframes(cam):
    return np.flatnonzero(cam.is_key_frame)


def _sweeps(cam):
    return np.flatnonzero(~cam.is_key_frame)


@pytest.mark.parametrize("camera", CAMERAS)
def test_devkit_clip_keyframes_equal_export_script_real(real_nusc, camera):
    assert _compare_with_devkit(real_nusc, "scene-0916", camera, _keyframes) > 0


@pytest.mark.parametrize("camera", ["CAM_FRONT", "CAM_BACK", "CAM_FRONT_LEFT"])
def test_devkit_interp_sweeps_equal_get_boxes_real(real_nusc, camera):
    assert _compare_with_devkit(real_nusc, "scene-0916", camera, _sweeps) > 100


@pytest.mark.parametrize("camera", ["CAM_FRONT", "CAM_BACK_RIGHT"])
def test_devkit_modes_equal_devkit_on_synthetic(synth_nusc, camera):
    scene = synth_nusc.scene[0]["name"]
    n_key = _compare_with_devkit(synth_nusc, scene, camera, _keyframes)
    n_sweep = _compare_with_devkit(synth_nusc, scene, camera, lambda cam: _sweeps(cam)[::3])
    assert n_key > 0 and n_sweep > 0


# Hand-built cases: identity ego pose and calibration, so global coordinates are camera coordinates
# (x right, y down, z forward); box length along x, width along y, height along z.
K = np.array([[1000.0, 0, 800], [0, 1000, 450], [0, 0, 1]])
IDENTITY_Q = np.array([1.0, 0, 0, 0])


def _project(center, size_wlh, clip):
    boxes, valid = project_boxes(np.array([center], float), np.array([size_wlh], float), np.array([IDENTITY_Q]),
                                 np.zeros(3), IDENTITY_Q, np.zeros(3), IDENTITY_Q, K, clip=clip)
    return boxes[0], bool(valid[0])


@pytest.mark.parametrize("clip", ["exact", "devkit"])
def test_box_in_front_projects_to_its_corner_bounds(clip):
    box, valid = _project([0, 0, 10], [2, 2, 2], clip)  # x, y in [-1, 1], z in [9, 11]
    assert valid
    np.testing.assert_allclose(box, [800 - 1000 / 9, 450 - 1000 / 9, 800 + 1000 / 9, 450 + 1000 / 9], atol=1e-9)


@pytest.mark.parametrize("clip", ["exact", "devkit"])
def test_box_behind_camera_has_no_box(clip):
    _, valid = _project([0, 0, -5], [2, 2, 2], clip)
    assert not valid


def test_box_straddling_camera_plane_exact_vs_devkit():
    # x in [-1, 1], y in [0.5, 1.5] (below the optical axis), z in [-1, 3]: the near part fills the bottom
    # of the image. The devkit drops the corners behind the camera and keeps only the far face.
    exact, ok_exact = _project([0, 1.0, 1.0], [1, 2, 4], "exact")
    devkit, ok_devkit = _project([0, 1.0, 1.0], [1, 2, 4], "devkit")
    assert ok_exact and ok_devkit
    np.testing.assert_allclose(exact, [0, 450 + 500 / 3, 1600, 900], atol=1e-6)
    np.testing.assert_allclose(devkit, [800 - 1000 / 3, 450 + 500 / 3, 800 + 1000 / 3, 900], atol=1e-6)


def test_box_around_camera_covers_image_in_exact_mode():
    exact, ok = _project([0, 0, 0.5], [2, 2, 2], "exact")  # z in [-0.5, 1.5], camera inside the box's x/y span
    assert ok
    np.testing.assert_allclose(exact, [0, 0, 1600, 900], atol=1e-6)
    devkit, _ = _project([0, 0, 0.5], [2, 2, 2], "devkit")
    np.testing.assert_allclose(devkit, [800 - 1000 / 1.5, 0, 800 + 1000 / 1.5, 900], atol=1e-6)


def test_exact_matches_dense_sampling_of_the_visible_box():
    """Random boxes near the camera: exact bounds equal the bounds of densely sampled box points in view."""
    rng = np.random.default_rng(0)
    g = np.linspace(-0.5, 0.5, 41)
    for _ in range(25):
        center = rng.uniform([-4, -2, -1], [4, 2, 8])
        size = rng.uniform(0.5, 5, 3)
        yaw = rng.uniform(-np.pi, np.pi)
        q = np.array([np.cos(yaw / 2), 0, np.sin(yaw / 2), 0])  # rotation about the camera's vertical (y) axis
        boxes, valid = project_boxes(center[None], size[None], q[None], np.zeros(3), IDENTITY_Q, np.zeros(3),
                                     IDENTITY_Q, K, clip="exact")
        # points on the box surface in the box frame (x = length, y = width, z = height)
        a, b = np.meshgrid(g, g)
        faces = []
        for axis in range(3):
            for sign in (-0.5, 0.5):
                pts = np.zeros((a.size, 3))
                others = [i for i in range(3) if i != axis]
                pts[:, axis], pts[:, others[0]], pts[:, others[1]] = sign, a.ravel(), b.ravel()
                faces.append(pts)
        local = np.concatenate(faces) * np.array([size[1], size[0], size[2]])
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        pts = local @ rot.T + center
        pts = pts[pts[:, 2] > 0.05]
        uv = pts[:, :2] / pts[:, 2:3] * 1000 + [800, 450]
        inside = (uv[:, 0] >= 0) & (uv[:, 0] <= 1600) & (uv[:, 1] >= 0) & (uv[:, 1] <= 900)
        if inside.sum() < 50:
            continue
        sampled = np.concatenate([uv[inside].min(0), uv[inside].max(0)])
        assert valid[0]
        # dense samples lie inside the exact box and come close to its edges
        assert np.all(sampled[:2] >= boxes[0, :2] - 1e-6) and np.all(sampled[2:] <= boxes[0, 2:] + 1e-6)
        np.testing.assert_allclose(sampled, boxes[0], atol=40)


def test_per_box_poses_broadcast():
    centers = np.array([[0, 0, 10.0], [0, 0, 10.0]])
    ego_t = np.array([[0, 0, 0.0], [1, 0, 0.0]])  # second ego moved 1 m along x: the box is 1 m further left
    boxes, valid = project_boxes(centers, np.ones((2, 3)), np.tile(IDENTITY_Q, (2, 1)), ego_t,
                                 np.tile(IDENTITY_Q, (2, 1)), np.zeros(3), IDENTITY_Q, K)
    assert valid.all()
    shifted, _ = _project([-1, 0, 10], [1, 1, 1], "exact")
    np.testing.assert_allclose(boxes[1], shifted, atol=1e-9)
    assert not np.allclose(boxes[0], boxes[1])
