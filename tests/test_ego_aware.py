"""Ego-aware TrackSSM (project option ``ego_aware``): the camera twists against the devkit's poses, the model
option, checkpoints, training data, the tracker and the command line's path all agree on the camera's motion."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from pyquaternion import Quaternion

from trackssm_lib.data import SequenceData, WindowDataset, collate_windows, load_sequence, windows_to_samples
from trackssm_lib.ego_motion import (CAMERA_FILE, camera_twists, frame_twists, mirror_twists, read_camera_csv,
                                     rotation_vectors)
from trackssm_lib.export import prepare
from trackssm_lib.model import CheckpointError, TrackSSM, load_checkpoint, save_checkpoint, save_official_checkpoint
from trackssm_lib.model_eval import next_box_error, split_samples
from trackssm_lib.trackers import MultiCameraTracker, TrackSSMTracker
from trackssm_lib.training import _training_samples, load_config
from trackssm_lib.tracking import TrackingError, run_tracking, scene_of, track_scene

SCENE = "scene-0916"


def rotvec_matrix(v: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, written independently of :func:`rotation_vectors`."""
    angle = np.linalg.norm(v)
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def test_rotation_vectors_invert_rodrigues():
    rng = np.random.default_rng(0)
    axes = rng.normal(size=(50, 3))
    vecs = axes / np.linalg.norm(axes, axis=1, keepdims=True) * rng.uniform(1e-7, 3.0, size=(50, 1))
    got = rotation_vectors(np.stack([rotvec_matrix(v) for v in vecs]))
    np.testing.assert_allclose(got, vecs, atol=1e-7)
    np.testing.assert_allclose(rotation_vectors(np.eye(3)[None]), np.zeros((1, 3)))


def test_twists_of_a_known_motion():
    """A camera driving 0.8 m per frame along its own viewing axis while turning 0.02 rad per frame about its
    vertical (y, pointing down) axis."""
    r = [np.eye(3)]
    t = [np.zeros(3)]
    step = np.array([0.0, 0.0, 0.8])
    turn = rotvec_matrix(np.array([0.0, 0.02, 0.0]))
    for _ in range(4):
        t.append(t[-1] + r[-1] @ step)
        r.append(r[-1] @ turn)
    quats = np.array([Quaternion(matrix=m).elements for m in r])
    tw = camera_twists(np.array(t), quats)
    np.testing.assert_allclose(tw[0], 0.0)
    np.testing.assert_allclose(tw[1:], np.tile([0, 0, 0.8, 0, 0.02, 0], (4, 1)), atol=1e-12)


@pytest.fixture(scope="module")
def real_export(real_scene_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ego_aware") / "export"
    prepare(real_scene_root, "v1.0-mini", out, cameras=["CAM_FRONT", "CAM_BACK_LEFT"], progress=False)
    return out


def test_twists_move_static_points_as_the_devkit_poses_do(real_export, real_nusc):
    """On the real scene: a static global point, put in the camera frame of frame f-1 with the devkit's poses and
    moved by the twist into frame f, lands where the devkit's poses of frame f put it."""
    seq = real_export / "mini_val" / f"{SCENE}_CAM_FRONT"
    twists = frame_twists(seq)
    tokens = [line.split(",")[1] for line in (seq / "frames.csv").read_text().splitlines()[1:]]
    assert len(twists) == len(tokens) > 200
    assert np.abs(twists[1:, 2]).max() > 0.3  # the ego drives: up to metres per frame along the view

    def camera_frame(token: str, point: np.ndarray) -> np.ndarray:
        sd = real_nusc.get("sample_data", token)
        pose = real_nusc.get("ego_pose", sd["ego_pose_token"])
        cs = real_nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        ego = Quaternion(pose["rotation"]).inverse.rotate(point - np.array(pose["translation"]))
        return Quaternion(cs["rotation"]).inverse.rotate(ego - np.array(cs["translation"]))

    rng = np.random.default_rng(0)
    for f in (1, 2, 50, 120, len(tokens) - 1):
        sd = real_nusc.get("sample_data", tokens[f - 1])
        pose = real_nusc.get("ego_pose", sd["ego_pose_token"])
        for _ in range(3):
            point = np.array(pose["translation"]) + rng.uniform(-30, 30, 3)
            before, after = camera_frame(tokens[f - 1], point), camera_frame(tokens[f], point)
            moved = rotvec_matrix(twists[f, 3:]).T @ (before - twists[f, :3])
            np.testing.assert_allclose(moved, after, atol=1e-6)


def test_mirrored_twists_are_the_mirrored_motion():
    rng = np.random.default_rng(1)
    mirror = np.diag([-1.0, 1.0, 1.0])
    for _ in range(10):
        v, t = rng.normal(size=3) * 0.1, rng.normal(size=3)
        twist = np.concatenate([t, v])
        mirrored = mirror_twists(twist[None])[0]
        np.testing.assert_allclose(rotvec_matrix(mirrored[3:]), mirror @ rotvec_matrix(v) @ mirror, atol=1e-12)
        np.testing.assert_allclose(mirrored[:3], mirror @ t)
    assert mirror_twists(np.zeros((2, 6), np.float32)).dtype == np.float32


def condition(batch: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    boxes = torch.rand(batch, 1, 4, generator=g) * 0.5 + 0.2 + (torch.randn(batch, 6, 4, generator=g) * 0.01).cumsum(1)
    return torch.cat([boxes[:, 1:], boxes[:, 1:] - boxes[:, :-1]], dim=-1)


def test_ego_parameters_start_neutral_then_matter():
    torch.manual_seed(0)
    plain = TrackSSM(backend="torch").eval()
    ego = TrackSSM(backend="torch", ego_aware=True).eval()
    extra = {k: v for k, v in ego.state_dict().items() if k.startswith("ego_encoder.")}
    ego.load_state_dict({**plain.state_dict(), **extra}, strict=True)
    cond, cls = condition(5), torch.tensor([0, 1, 4, 5, 6])
    twist = torch.randn(5, 6)
    with torch.no_grad():
        base = plain(cond, cls)
        assert torch.equal(ego(cond, cls, twist), base)  # last layer zero: the same function
        ego.ego_encoder.net[-1].weight.normal_(0, 0.05)
        moving, still = ego(cond, cls, twist), ego(cond, cls, torch.zeros(5, 6))
        assert not torch.allclose(moving, still, atol=1e-6)
        assert torch.equal(ego(cond, cls), still)  # no ego given: the camera stood still
        assert torch.equal(ego.predict(cond, cls, twist), moving)
    with pytest.raises(ValueError, match=r"ego must be \(5, 6\)"):
        ego(cond, cls, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="ego_aware"):
        TrackSSM(ego_aware=1)
    assert not any(k.startswith("ego_encoder.") for k in ego.official_state_dict())


def test_ego_parameters_in_checkpoints(tmp_path):
    torch.manual_seed(1)
    plain_path = save_checkpoint(tmp_path / "plain.pth", TrackSSM(backend="torch"))
    ego = load_checkpoint(plain_path, TrackSSM(backend="torch", ego_aware=True)).eval()  # a fine-tuning's start
    assert torch.count_nonzero(ego.ego_encoder.net[-1].weight) == 0
    with torch.no_grad():
        ego.ego_encoder.net[-1].weight.normal_()
    path = save_checkpoint(tmp_path / "ego.pth", ego)
    again = load_checkpoint(path).eval()
    assert again.ego_aware
    cond, cls, twist = condition(3), torch.tensor([0, 4, 6]), torch.randn(3, 6)
    with torch.no_grad():
        assert torch.equal(again(cond, cls, twist), ego(cond, cls, twist))
    with pytest.raises(CheckpointError, match="unexpected keys: ego_encoder"):
        load_checkpoint(path, TrackSSM(backend="torch"))
    raw = torch.load(path, weights_only=True)
    del raw["model"]["ego_encoder.net.4.weight"]
    torch.save(raw, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: ego_encoder\.net\.4\.weight"):
        load_checkpoint(tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="ego-aware"):
        save_official_checkpoint(tmp_path / "official.pth", ego)


def one_track(name: str, twists: np.ndarray) -> SequenceData:
    frames = np.arange(1, 31)
    boxes = np.column_stack([0.3 + 0.002 * frames, np.full(30, 0.5), np.full(30, 0.1), np.full(30, 0.2)])
    ego = np.zeros((31, 6), np.float32)
    ego[1:] = twists
    return SequenceData(name, 1600, 900, 30, frames, np.ones(30, np.int64), boxes.astype(np.float32),
                        np.full(30, 4, np.int64), ego=ego)


def test_windows_carry_the_twist_of_their_target_frame_mirrored_with_flips():
    rng = np.random.default_rng(2)
    twists = rng.normal(size=(30, 6)).astype(np.float32)
    twists[0] = 0
    seq = one_track("scene-0001_CAM_FRONT", twists)
    val = WindowDataset([seq], sequence_length=10, train=False)
    for i in range(len(val)):
        item = val[i]
        frames = np.arange(item["start_frame"], item["start_frame"] + 11)
        expected = np.where((frames >= 1)[:, None], seq.ego[np.clip(frames, 0, 30)], 0)
        np.testing.assert_array_equal(item["ego"], expected)
    train = WindowDataset([seq], sequence_length=10, train=True, flip_prob=0.5, seed=0)
    flips = set()
    for i in range(len(train)):
        item, plain = train[i], val[i]
        flipped = bool(item["cur_bbox"][0, 0] > 0.5)
        flips.add(flipped)
        np.testing.assert_array_equal(item["ego"], mirror_twists(plain["ego"]) if flipped else plain["ego"])
    assert flips == {True, False}
    batch = collate_windows([val[3], val[5]])
    s = windows_to_samples(batch)
    np.testing.assert_array_equal(s["ego"].numpy(), np.stack([val[3]["ego"][-1], val[5]["ego"][-1]]))
    *_, ego = _training_samples(batch, load_config(None, ["ego_aware=true"]))
    assert torch.equal(ego, s["ego"])


class RecordingEgoModel:
    """Stands in for an ego-aware TrackSSM: records the twists of every call, predicts the last box."""

    num_classes, num_cameras, ego_aware = 7, 0, True

    def __init__(self) -> None:
        self.egos: list[np.ndarray] = []

    def predict(self, cond: torch.Tensor, ids: torch.Tensor | None, ego: torch.Tensor) -> torch.Tensor:
        self.egos.append(ego.numpy().copy())
        return cond[:, -1, :4]


def test_multicamera_tracker_gives_each_camera_its_own_twist():
    model = RecordingEgoModel()
    trackers = {c: TrackSSMTracker(model, 12, camera=c) for c in ("CAM_FRONT", "CAM_BACK")}
    multi = MultiCameraTracker(trackers)
    dets = {"CAM_FRONT": np.array([[100.0, 100, 160, 140, 0.9, 0], [400, 100, 460, 140, 0.9, 0]]),
            "CAM_BACK": np.array([[700.0, 300, 760, 340, 0.9, 4]])}
    for frame in range(1, 5):
        for i, trk in enumerate(trackers.values()):
            trk.set_ego_motion(np.full(6, frame + 10.0 * i))
        multi.update(dets)
    assert len(model.egos) == 3  # frames 2-4 (nothing to predict at frame 1)
    for frame, ego in zip((2, 3, 4), model.egos):
        np.testing.assert_array_equal(ego, np.array([[frame] * 6] * 2 + [[frame + 10.0] * 6]))
    with pytest.raises(ValueError, match="6 finite numbers"):
        trackers["CAM_FRONT"].set_ego_motion([1.0, 2.0])
    blind = TrackSSMTracker(RecordingEgoModel(), 12)
    blind.update(dets["CAM_BACK"])
    with pytest.warns(UserWarning, match="as if the camera stood still"):
        blind.update(dets["CAM_BACK"])


def test_track_scene_feeds_the_camera_twists(real_export, tmp_path, monkeypatch):
    """Through the command line's path: before every frame each camera's tracker gets that frame's twist from its
    camera.csv (the rotation zeroed under ego-rotation compensation), and the model reads it; a missing camera.csv is
    a clear error."""
    dirs = sorted(p for p in (real_export / "mini_val").iterdir() if p.is_dir())
    scene = [d for d in dirs if scene_of(d.name) == SCENE]
    assert len(scene) == 2
    calls: dict[str, list[np.ndarray]] = {}
    original = TrackSSMTracker.set_ego_motion

    def recording(self, twist):
        calls.setdefault(self.camera, []).append(np.array(twist))
        original(self, twist)

    monkeypatch.setattr(TrackSSMTracker, "set_ego_motion", recording)
    model = RecordingEgoModel()
    track_scene(scene, "trackssm", None, "gt", model, seed=0)
    for d in scene:
        np.testing.assert_array_equal(np.array(calls[d.name.split("_", 1)[1]]), frame_twists(d))
    fed = np.concatenate(model.egos)
    known = np.concatenate([frame_twists(d) for d in scene])
    assert len(fed) > 200 and all(np.abs(known - row).max(axis=1).min() < 1e-6 for row in fed[::7])  # float32

    calls.clear()
    model = RecordingEgoModel()
    homographies = {d: np.tile(np.eye(3), (len(read_camera_csv(d)), 1, 1)) for d in scene}
    track_scene(scene, "trackssm", None, "gt", model, seed=0, homographies=homographies)
    fed = np.concatenate(model.egos)
    assert np.all(fed[:, 3:] == 0) and np.any(fed[:, :3] != 0)


    path = save_checkpoint(tmp_path / "ego.pth", TrackSSM(backend="torch", ego_aware=True))
    summary = run_tracking(real_export, "mini_val", "trackssm", "gt", tmp_path / "ok", checkpoint=path,
                           progress=False)
    assert summary["sequences"] == 2 and summary["boxes"] > 0
    broken = tmp_path / "broken"
    shutil.copytree(real_export, broken)
    (broken / "mini_val" / f"{SCENE}_CAM_BACK_LEFT" / CAMERA_FILE).unlink()
    with pytest.raises(TrackingError, match=r"camera.csv: missing"):
        run_tracking(broken, "mini_val", "trackssm", "gt", tmp_path / "res", checkpoint=path, progress=False)
    assert not (tmp_path / "res").exists()


def test_model_evaluation_passes_the_twist_of_the_predicted_frame(real_export):
    samples = split_samples(real_export, "mini_val")
    seq = real_export / "mini_val" / f"{SCENE}_CAM_FRONT"
    loaded = load_sequence(seq, ego=True)
    np.testing.assert_array_equal(loaded.ego[1:], frame_twists(seq).astype(np.float32))
    assert samples["ego"].shape == (*samples["boxes7"].shape[:2], 6)
    assert np.abs(samples["ego"][:, -1, 2]).max() > 0.3
    torch.manual_seed(0)
    model = TrackSSM(backend="torch", ego_aware=True)
    with torch.no_grad():
        model.ego_encoder.net[-1].weight.normal_(0, 0.01)
    moved = next_box_error(samples, {"m": model})[-1]["mean_center_error_px"]
    still = next_box_error({**samples, "ego": np.zeros_like(samples["ego"])}, {"m": model})[-1]["mean_center_error_px"]
    assert moved != still
    with pytest.raises(ValueError, match="ego-aware"):
        next_box_error({k: v for k, v in samples.items() if k != "ego"}, {"m": model})


def test_model_evaluation_refuses_an_ego_aware_model_without_camera_poses(real_export, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(real_export, broken)
    (broken / "mini_val" / f"{SCENE}_CAM_BACK_LEFT" / CAMERA_FILE).unlink()
    samples = split_samples(broken, "mini_val")
    assert samples["sequences_without_poses"] == 1
    assert split_samples(real_export, "mini_val")["sequences_without_poses"] == 0
    plain = TrackSSM(backend="torch")
    rows = next_box_error(samples, {"cv": None, "plain": plain})  # models that do not read the ego motion: fine
    assert {r["model"] for r in rows} == {"cv", "plain"}
    with pytest.raises(ValueError, match=r"1 sequence\(s\) of split 'mini_val' have no camera.csv"):
        next_box_error(samples, {"ego": TrackSSM(backend="torch", ego_aware=True)})
