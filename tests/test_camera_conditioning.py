"""Camera-aware TrackSSM (project option ``num_cameras`` / training ``camera_aware``): model, checkpoints, data,
training samples and tracker all agree on which camera a track is seen from."""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from trackssm_lib.constants import CAMERAS
from trackssm_lib.data import (MIRRORED_SLOT, SequenceData, WindowDataset, camera_of, camera_slot, collate_windows,
                               windows_to_samples)
from trackssm_lib.model import CheckpointError, TrackSSM, load_checkpoint, save_checkpoint, save_official_checkpoint
from trackssm_lib.trackers import TrackSSMTracker
from trackssm_lib.training import ConfigError, _training_samples, load_config
from trackssm_lib.tracking import make_tracker

C = 7  # classes


def condition(batch: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    boxes = torch.rand(batch, 1, 4, generator=g) * 0.5 + 0.2 + (torch.randn(batch, 6, 4, generator=g) * 0.01).cumsum(1)
    return torch.cat([boxes[:, 1:], boxes[:, 1:] - boxes[:, :-1]], dim=-1)


def test_camera_slots_and_their_mirror_images():
    assert [camera_slot(f"scene-0001_{c}") for c in CAMERAS] == [1, 2, 3, 4, 5, 6]
    assert camera_slot("TUD-Campus") == 0 and camera_of("TUD-Campus") is None
    assert camera_of("scene-0001_CAM_BACK_LEFT") == "CAM_BACK_LEFT"
    mirror = {CAMERAS[i - 1]: CAMERAS[MIRRORED_SLOT[i] - 1] for i in range(1, 7)}
    assert mirror == {"CAM_FRONT": "CAM_FRONT", "CAM_BACK": "CAM_BACK", "CAM_FRONT_LEFT": "CAM_FRONT_RIGHT",
                      "CAM_FRONT_RIGHT": "CAM_FRONT_LEFT", "CAM_BACK_LEFT": "CAM_BACK_RIGHT",
                      "CAM_BACK_RIGHT": "CAM_BACK_LEFT"}
    assert MIRRORED_SLOT[0] == 0


def test_camera_parameters_start_neutral_then_matter():
    torch.manual_seed(0)
    plain = TrackSSM(backend="torch").eval()
    cam = TrackSSM(backend="torch", num_cameras=6).eval()
    cam.load_state_dict({**plain.state_dict(), "camera_embedding.weight": cam.camera_embedding.weight}, strict=True)
    cond, cls = condition(6), torch.tensor([0, 1, 2, 4, 5, 6])
    slots = torch.tensor([1, 2, 3, 4, 5, 6])
    with torch.no_grad():
        base = plain(cond, cls)
        assert torch.equal(cam(cond, cam.condition_ids(cls, slots)), base)  # zero camera vectors: same function
        cam.camera_embedding.weight[1:].normal_(0, 0.5)
        front = cam(cond, cam.condition_ids(cls, torch.ones(6, dtype=torch.long)))
        back = cam(cond, cam.condition_ids(cls, torch.full((6,), 4)))
        assert not torch.allclose(front, back, atol=1e-6)
        assert torch.equal(cam(cond, cls), base)  # ids below num_classes: slot 0, camera unknown
    assert torch.equal(plain.condition_ids(cls, slots), cls)  # a model without cameras ignores them
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 49\)"):
        cam(cond[:1], torch.tensor([49]))
    with pytest.raises(ValueError, match="num_cameras"):
        TrackSSM(num_cameras=-1)
    assert "camera_embedding.weight" not in cam.official_state_dict()


def test_camera_parameters_in_checkpoints(tmp_path):
    torch.manual_seed(1)
    plain = TrackSSM(backend="torch").eval()
    plain_path = save_checkpoint(tmp_path / "plain.pth", plain)
    # a start checkpoint without cameras: camera parameters start at zero, everything else loaded
    cam = load_checkpoint(plain_path, TrackSSM(backend="torch", num_cameras=6)).eval()
    assert torch.count_nonzero(cam.camera_embedding.weight) == 0
    torch.testing.assert_close(cam.class_embedding.weight, plain.class_embedding.weight)
    with torch.no_grad():
        cam.camera_embedding.weight.normal_()
    cam_path = save_checkpoint(tmp_path / "cam.pth", cam)
    again = load_checkpoint(cam_path).eval()  # built from the file's config
    assert again.num_cameras == 6
    cond, ids = condition(3), torch.tensor([0, 7 * 3 + 4, 7 * 6 + 6])
    with torch.no_grad():
        assert torch.equal(again(cond, ids), cam(cond, ids))
    with pytest.raises(CheckpointError, match="unexpected keys: camera_embedding.weight"):
        load_checkpoint(cam_path, TrackSSM(backend="torch"))
    raw = torch.load(cam_path, weights_only=True)
    del raw["model"]["camera_embedding.weight"]
    torch.save(raw, tmp_path / "broken.pth")  # a camera-aware file must carry its camera parameters
    with pytest.raises(CheckpointError, match=r"missing keys: camera_embedding\.weight \(7, 256\)"):
        load_checkpoint(tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match="num_cameras=6"):
        save_official_checkpoint(tmp_path / "official.pth", cam)


def one_track(name: str) -> SequenceData:
    frames = np.arange(1, 31)
    boxes = np.column_stack([0.3 + 0.002 * frames, np.full(30, 0.5), np.full(30, 0.1), np.full(30, 0.2)])
    return SequenceData(name, 1600, 900, 30, frames, np.ones(30, np.int64), boxes.astype(np.float32),
                        np.full(30, 4, np.int64))


def test_windows_carry_the_camera_and_flips_mirror_it():
    seq = one_track("scene-0001_CAM_FRONT_LEFT")
    val = WindowDataset([seq], sequence_length=10, train=False)
    assert {val[i]["camera_slot"] for i in range(len(val))} == {6}
    train = WindowDataset([seq], sequence_length=10, train=True, flip_prob=0.5, seed=0)
    seen = set()
    for i in range(len(train)):
        item = train[i]
        flipped = item["cur_bbox"][0, 0] > 0.5  # the track sits left of centre, a flip moves it right
        assert item["camera_slot"] == (2 if flipped else 6)  # CAM_FRONT_RIGHT when mirrored
        seen.add(bool(flipped))
    assert seen == {True, False}
    other = WindowDataset([replace(seq, name="scene-0001_CAM_BACK")], sequence_length=10, train=False)
    batch = collate_windows([val[0], other[0], val[1]])
    assert batch["camera_slots"].tolist() == [6, 4, 6]
    samples = windows_to_samples(batch)
    assert samples["camera_slots"].tolist() == batch["camera_slots"][samples["batch_index"]].tolist()
    cfg = load_config(None, ["camera_aware=true"])
    _, ids, _, ego = _training_samples(batch, cfg)
    assert ego is None  # not ego-aware
    assert ids.tolist() == [4 + 7 * 6, 4 + 7 * 4, 4 + 7 * 6]
    _, ids, _, _ = _training_samples(batch, load_config(None, []))
    assert ids.tolist() == [4, 4, 4]  # the official setting: classes only
    with pytest.raises(ConfigError, match="camera_aware"):
        load_config(None, ["camera_aware=3"])


class RecordingModel:
    """Stands in for a camera-aware TrackSSM: records the ids of every call, predicts the last box."""

    num_classes, num_cameras = C, 6

    def __init__(self) -> None:
        self.ids: list[list[int]] = []

    def predict(self, cond: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
        self.ids.append(ids.tolist())
        return cond[:, -1, :4]


def test_tracker_feeds_its_camera_to_a_camera_aware_model():
    model = RecordingModel()
    trk = make_tracker("trackssm", None, 12, (1600, 900), model, camera="CAM_BACK_RIGHT")
    det = np.array([[100.0, 100, 160, 140, 0.9, 5]])
    for _ in range(3):
        trk.update(det)
    assert model.ids and all(ids == [5 + C * 3] for ids in model.ids)  # motorcycle, slot 3
    with pytest.raises(ValueError, match="unknown camera"):
        TrackSSMTracker(model, camera="CAM_TOP")
    with pytest.warns(UserWarning, match="camera-agnostic"):
        blind = TrackSSMTracker(model)
    assert blind.class_ids([]).tolist() == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = TrackSSMTracker(TrackSSM(backend="torch"), camera="CAM_FRONT")  # no cameras: ids are the classes
    for _ in range(3):
        plain.update(det)
    assert plain.class_ids(plain.tracked).tolist() == [5]


def test_track_scene_gives_each_camera_its_own_slot(export_split):
    """Through the command line's path (one batched call for all cameras of a scene), every track's ids carry the
    camera of its own sequence."""
    from trackssm_lib.tracking import scene_of, track_scene

    dirs = sorted(p for p in export_split.iterdir() if p.is_dir())
    scene = [d for d in dirs if scene_of(d.name) == scene_of(dirs[0].name)]
    assert {camera_of(d.name) for d in scene} == {"CAM_FRONT", "CAM_BACK"}
    model = RecordingModel()
    results = track_scene(scene, "trackssm", None, "gt", model, seed=0)
    assert sum(len(r) for r in results.values()) > 0
    slots = {i // C for ids in model.ids for i in ids}
    assert slots == {camera_slot("x_CAM_FRONT"), camera_slot("x_CAM_BACK")}
