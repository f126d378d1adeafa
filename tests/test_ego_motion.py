"""Ego-rotation compensation: camera.csv against the devkit, the rotation homography against the devkit's
projection of far points, the trackers' warps, and its effect on the real nuScenes scene."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from pyquaternion import Quaternion

from trackssm_lib.ego_motion import (CAMERA_FILE, CameraPoseError, frame_homographies, read_camera_csv, warp_boxes,
                                     warp_points)
from trackssm_lib.evaluation import evaluate
from trackssm_lib.export import prepare
from trackssm_lib.geometry import quaternion_multiply
from trackssm_lib.trackers import KalmanTracker, TrackSSMTracker
from trackssm_lib.tracking import TrackingError, run_tracking

SCENE = "scene-0916"


class ConstantVelocityModel:
    """Stub TrackSSM: next box = last box + last delta (normalised rows in, normalised box out)."""

    def predict(self, condition, class_ids=None):
        return condition[:, -1, :4] + condition[:, -1, 4:]


@pytest.fixture(scope="module")
def real_cam_back(real_scene_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ego") / "export"
    prepare(real_scene_root, "v1.0-mini", out, cameras=["CAM_BACK", "CAM_FRONT_LEFT"], progress=False)
    return out


def test_quaternion_multiply_matches_pyquaternion():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
    ours = quaternion_multiply(a, b)
    ref = np.array([(Quaternion(x) * Quaternion(y)).elements for x, y in zip(a, b)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_camera_csv_is_the_devkit_pose(real_cam_back, real_nusc):
    seq = real_cam_back / "mini_val" / f"{SCENE}_CAM_BACK"
    rows = read_camera_csv(seq)
    tokens = [line.split(",")[1] for line in (seq / "frames.csv").read_text().splitlines()[1:]]
    assert len(rows) == len(tokens) > 200
    for i in (0, 1, 57, len(tokens) - 1):
        sd = real_nusc.get("sample_data", tokens[i])
        cs = real_nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = real_nusc.get("ego_pose", sd["ego_pose_token"])
        rotation = Quaternion(pose["rotation"]) * Quaternion(cs["rotation"])
        translation = Quaternion(pose["rotation"]).rotate(cs["translation"]) + np.array(pose["translation"])
        np.testing.assert_allclose(rows[i, :3], translation, atol=1e-6)
        assert abs(abs(np.dot(rows[i, 3:7], rotation.elements)) - 1) < 1e-9
        k = np.array(cs["camera_intrinsic"])
        np.testing.assert_allclose(rows[i, 7:], [k[0, 0], k[1, 1], k[0, 2], k[1, 2]], atol=1e-6)


def test_rotation_homography_moves_far_points_like_the_devkit_projection(real_cam_back, real_nusc):
    """A point 100 km away (no parallax) seen at frame f-1 lands where the devkit projects it at frame f."""
    from nuscenes.utils.geometry_utils import view_points

    seq = real_cam_back / "mini_val" / f"{SCENE}_CAM_BACK"
    rows = read_camera_csv(seq)
    h = frame_homographies(seq, len(rows))
    np.testing.assert_allclose(h[0], np.eye(3))
    tokens = [line.split(",")[1] for line in (seq / "frames.csv").read_text().splitlines()[1:]]
    pixels = np.array([[100.0, 120.0], [800.0, 450.0], [1500.0, 800.0]])
    moved = []
    for f in (1, 30, 90, 150):  # frame index f: from frame f-1 to f (0-based)
        prev = real_nusc.get("sample_data", tokens[f - 1])
        cs = real_nusc.get("calibrated_sensor", prev["calibrated_sensor_token"])
        pose = real_nusc.get("ego_pose", prev["ego_pose_token"])
        k = np.array(cs["camera_intrinsic"])
        rays = np.linalg.inv(k) @ np.vstack([pixels.T, np.ones(len(pixels))])
        world = ((Quaternion(pose["rotation"]) * Quaternion(cs["rotation"])).rotation_matrix @ (rays * 1e5)
                 + rows[f - 1, :3, None])
        cur = real_nusc.get("sample_data", tokens[f])
        cs2 = real_nusc.get("calibrated_sensor", cur["calibrated_sensor_token"])
        pose2 = real_nusc.get("ego_pose", cur["ego_pose_token"])
        pts = world - np.array(pose2["translation"])[:, None]
        pts = Quaternion(pose2["rotation"]).inverse.rotation_matrix @ pts
        pts = Quaternion(cs2["rotation"]).inverse.rotation_matrix @ (pts - np.array(cs2["translation"])[:, None])
        ref = view_points(pts, np.array(cs2["camera_intrinsic"]), normalize=True)[:2].T
        ours, _ = warp_points(h[f], pixels)
        np.testing.assert_allclose(ours, ref, atol=0.05)
        moved.append(np.abs(ours - pixels).max())
    assert max(moved) > 10  # the ego turns in this scene: the rotation alone moves pixels by tens of pixels


def test_warp_points_jacobian_is_the_derivative():
    h = np.array([[1.01, 0.02, -30.0], [-0.01, 0.99, 5.0], [2e-5, -1e-5, 1.0]])
    p = np.array([[300.0, 200.0], [1400.0, 700.0]])
    _, jac = warp_points(h, p)
    eps = 1e-4
    for j in range(2):
        step = np.zeros(2)
        step[j] = eps
        numeric = (warp_points(h, p + step)[0] - warp_points(h, p - step)[0]) / (2 * eps)
        np.testing.assert_allclose(jac[:, :, j], numeric, rtol=1e-6, atol=1e-8)
    boxes, _ = warp_boxes(np.eye(3), np.array([[10.0, 20.0, 30.0, 40.0]]))
    np.testing.assert_allclose(boxes, [[10.0, 20.0, 30.0, 40.0]])


SHIFT = np.array([[1.0, 0.0, -40.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # a pan: everything 40 px to the left


def _panning_track_ids(tracker, compensate: bool) -> list[int]:
    """A static object 30 px wide seen by a camera that pans 40 px per frame (without compensation consecutive
    boxes do not overlap at all): the track id output in each of 12 frames (0: none)."""
    ids = []
    for f in range(12):
        x = 1200.0 - 40.0 * f
        if compensate and f:
            tracker.camera_motion(SHIFT)
        out = tracker.update(np.array([[x, 400.0, x + 30.0, 480.0, 0.9, 0]]))
        ids.append(int(out[0, 4]) if len(out) else 0)
    return ids


@pytest.mark.parametrize("kind", ["kalman", "trackssm-cv"])
def test_compensation_keeps_the_identity_under_a_camera_pan(kind):
    def make():
        return (KalmanTracker(frame_rate=12) if kind == "kalman"
                else TrackSSMTracker(ConstantVelocityModel(), frame_rate=12, image_size=(1600, 900)))

    assert _panning_track_ids(make(), compensate=False) == [1] + [0] * 11  # lost at once, never re-confirmed
    assert _panning_track_ids(make(), compensate=True) == [1] * 12


def test_tracker_warps_match_the_pan():
    """A pure shift moves boxes, Kalman means and TrackSSM history boxes by the shift and keeps every delta and
    velocity; a non-finite or wrongly shaped homography is refused."""
    kalman = KalmanTracker(frame_rate=12)
    ssm = TrackSSMTracker(ConstantVelocityModel(), frame_rate=12, image_size=(1600, 900))
    for f, x in enumerate((500.0, 510.0, 520.0)):
        for trk in (kalman, ssm):
            trk.update(np.array([[x, 100.0, x + 50.0, 200.0, 0.9, 0]]))
    (kt,), (st,) = kalman.tracked, ssm.tracked
    k_before, k_cov, box_before = kt.motion[0].copy(), kt.motion[1].copy(), kt.box.copy()
    s_before = np.array(st.motion)
    kalman.camera_motion(SHIFT)
    ssm.camera_motion(SHIFT)
    np.testing.assert_allclose(kt.motion[0], k_before - [40, 0, 0, 0, 0, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(kt.motion[1], k_cov, atol=1e-9)
    np.testing.assert_allclose(np.array(st.motion), s_before - [40, 0, 0, 0, 0, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(kt.box, box_before - [40, 0, 40, 0], atol=1e-9)
    with pytest.raises(ValueError, match="3x3"):
        kalman.camera_motion(np.eye(2))
    with pytest.raises(ValueError, match="finite"):
        kalman.camera_motion(np.full((3, 3), np.nan))


def _combined(export, detections, tmp, ego):
    res = tmp / f"{detections}_{ego}"
    summary = run_tracking(export, "mini_val", tracker="kalman", detections=detections, out=res, progress=False,
                           ego_compensation=ego)
    assert summary["ego_compensation"] is ego
    m = evaluate(export / "mini_val", res, None, print_summary=False)
    return m["combined_det_avg"]["HOTA"], sum(c["IDSW"] for c in m["per_class"].values())


def test_compensation_on_the_real_scene(real_cam_back, tmp_path):
    """scene-0916 turns at up to 30 deg/s: with exact boxes, compensation removes most identity switches."""
    hota_off, idsw_off = _combined(real_cam_back, "gt", tmp_path, False)
    hota_on, idsw_on = _combined(real_cam_back, "gt", tmp_path, True)
    assert idsw_on <= 0.6 * idsw_off, (idsw_on, idsw_off)
    assert hota_on >= hota_off + 3, (hota_on, hota_off)


def test_cli_and_errors(real_cam_back, tmp_path):
    seq = real_cam_back / "mini_val" / f"{SCENE}_CAM_BACK"
    cmd = [sys.executable, "-m", "trackssm_lib", "track", "--data", str(real_cam_back), "--split", "mini_val",
           "--tracker", "kalman", "--detections", "gt", "--out", str(tmp_path / "cli"), "--ego-compensation",
           "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["ego_compensation"] is True
    with pytest.raises(TrackingError, match="BoxMOT"):
        run_tracking(real_cam_back, "mini_val", tracker="boxmot:bytetrack", out=tmp_path / "b", progress=False,
                     ego_compensation=True)

    broken = shutil.copytree(real_cam_back, tmp_path / "broken")
    camera_file = broken / "mini_val" / seq.name / CAMERA_FILE
    text = camera_file.read_text().splitlines()
    text[3] = text[3].replace(",", ";", 1)
    camera_file.write_text("\n".join(text) + "\n")
    with pytest.raises(TrackingError, match=r"camera\.csv, line 4"):
        run_tracking(broken, "mini_val", tracker="kalman", out=tmp_path / "x", progress=False, ego_compensation=True)
    camera_file.unlink()
    with pytest.raises(TrackingError, match=r"camera\.csv: missing"):
        run_tracking(broken, "mini_val", tracker="kalman", out=tmp_path / "x", progress=False, ego_compensation=True)
    with pytest.raises(CameraPoseError, match="frames, but the sequence has"):
        read_camera_csv(real_cam_back / "mini_val" / seq.name, length=3)


def test_resumed_export_adds_the_camera_file(real_cam_back, real_scene_root, tmp_path):
    """A sequence without camera.csv (an export made before it existed) is rebuilt on a rerun, identical to a fresh
    export's."""
    old = shutil.copytree(real_cam_back, tmp_path / "old")
    seq = old / "mini_val" / f"{SCENE}_CAM_BACK"
    (seq / CAMERA_FILE).unlink()
    gt_before = (seq / "gt" / "gt.txt").read_text()
    stats = prepare(real_scene_root, "v1.0-mini", old, cameras=["CAM_BACK", "CAM_FRONT_LEFT"], progress=False)
    assert stats["_timing"]["repaired"] == 1
    assert (seq / CAMERA_FILE).read_text() == (real_cam_back / "mini_val" / seq.name / CAMERA_FILE).read_text()
    assert (seq / "gt" / "gt.txt").read_text() == gt_before


def test_comparison_passes_the_flag_and_keys_its_cache_on_it(real_cam_back, tmp_path):
    from trackssm_lib.comparison import compare_trackers, run_folder

    spec = [{"name": "kalman", "tracker": "kalman", "checkpoint": None}]
    kw = dict(detections=["gt"], out_dir=tmp_path, say=lambda *_: None)
    off = compare_trackers(real_cam_back, "mini_val", spec, **kw)
    on = compare_trackers(real_cam_back, "mini_val", spec, ego_compensation=True, **kw)
    settings = json.loads((run_folder(tmp_path, "kalman", "gt") / "settings.json").read_text())
    assert settings["settings"]["ego_compensation"] is True and settings["tracking"]["ego_compensation"] is True
    idsw = [sum(r["IDSW"] for r in rows if r["class_name"] in ("car", "pedestrian")) for rows in (off, on)]
    assert idsw[1] < idsw[0]
