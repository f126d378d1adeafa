"""The synthetic nuScenes generator: devkit compatibility, timing, content, determinism, rendering."""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.synth import generate_dataset

TRACKED = {"vehicle.car", "vehicle.truck", "vehicle.trailer", "vehicle.motorcycle", "vehicle.bicycle"}
PEDS = {"human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
        "human.pedestrian.police_officer"}
BUSES = {"vehicle.bus.rigid", "vehicle.bus.bendy"}
CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT")


def _load(root: Path, version: str = "v1.0-mini"):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version=version, dataroot=str(root), verbose=False)


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "mini"
    generate_dataset(root, "v1.0-mini", n_scenes=3, seed=0, images=False, progress=False)
    return root, _load(root)


@pytest.fixture(scope="module")
def mini10(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth10") / "mini"
    generate_dataset(root, "v1.0-mini", n_scenes=10, seed=1, images=False, progress=False)
    return root, _load(root)


def _cat(nusc, ann) -> str:
    return nusc.get("category", nusc.get("instance", ann["instance_token"])["category_token"])["name"]


def test_loads_and_official_names(mini):
    from nuscenes.utils.splits import create_splits_scenes

    root, nusc = mini
    sp = create_splits_scenes()
    names = [s["name"] for s in nusc.scene]
    assert len(names) == 3
    assert all(n in sp["mini_train"] or n in sp["mini_val"] for n in names)
    assert any(n in sp["mini_val"] for n in names) and any(n in sp["mini_train"] for n in names)
    for table in ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose",
                  "log", "scene", "sample", "sample_data", "sample_annotation", "map"):
        assert (root / "v1.0-mini" / f"{table}.json").is_file()
        assert len(getattr(nusc, table)) > 0
    assert (root / nusc.map[0]["filename"]).is_file()
    for s in nusc.scene:
        assert 38 <= s["nbr_samples"] <= 42
    # devkit basics on a keyframe and a sweep
    sample = nusc.sample[5]
    sd = sample["data"]["CAM_FRONT"]
    path, boxes, k = nusc.get_sample_data(sd)
    assert np.asarray(k).shape == (3, 3)
    assert len(nusc.get_boxes(sd)) == len(sample["anns"])
    sweep = nusc.get("sample_data", sd)["next"]
    assert not nusc.get("sample_data", sweep)["is_key_frame"]
    assert len(nusc.get_boxes(sweep)) > 0


def test_small_trainval_names(tmp_path):
    from nuscenes.utils import splits

    root = generate_dataset(tmp_path / "tv", "v1.0-trainval", n_scenes=4, seed=2, images=False, progress=False)
    nusc = _load(root, "v1.0-trainval")
    names = [s["name"] for s in nusc.scene]
    assert len(names) == 4
    assert all(n in splits.train or n in splits.val for n in names)
    assert any(n in splits.val for n in names) and any(n in splits.train for n in names)


def test_camera_chains(mini10):
    _, nusc = mini10
    sensor = {c["token"]: nusc.get("sensor", c["sensor_token"])["channel"] for c in nusc.calibrated_sensor}
    four_gaps = 0
    for scene in nusc.scene:
        first = nusc.get("sample", scene["first_sample_token"])
        last = nusc.get("sample", scene["last_sample_token"])
        for ch in CAMERAS:
            tok = first["data"][ch]
            recs = []
            while tok:
                r = nusc.get("sample_data", tok)
                recs.append(r)
                tok = r["next"]
            assert recs[0]["is_key_frame"] and recs[-1]["is_key_frame"]
            assert recs[0]["sample_token"] == first["token"] and recs[-1]["sample_token"] == last["token"]
            assert all(sensor[r["calibrated_sensor_token"]] == ch for r in recs)
            t = np.array([r["timestamp"] for r in recs])
            d = np.diff(t)
            assert (d > 0).all()
            assert 78_000 < np.median(d) < 89_000
            key = np.array([r["is_key_frame"] for r in recs])
            kt = t[key]
            assert 480_000 < np.median(np.diff(kt)) < 520_000
            assert key.sum() == scene["nbr_samples"]
            kidx = np.nonzero(key)[0]
            gaps = np.diff(kidx) - 1
            assert set(gaps.tolist()) <= {4, 5}
            four_gaps += int((gaps == 4).sum())
            for i, r in enumerate(recs):
                assert r["ego_pose_token"] == r["token"]
                assert nusc.get("ego_pose", r["token"])["timestamp"] == r["timestamp"]
                if not r["is_key_frame"]:
                    nxt = recs[kidx[kidx > i][0]]
                    assert r["sample_token"] == nxt["sample_token"]
                    assert r["filename"].startswith(f"sweeps/{ch}/")
                else:
                    assert r["filename"].startswith(f"samples/{ch}/")
                    samp = nusc.get("sample", r["sample_token"])
                    assert abs(r["timestamp"] - samp["timestamp"]) < 50_000
    assert four_gaps > 0
    for s in nusc.sample:
        assert all(ch in s["data"] for ch in CAMERAS + ("LIDAR_TOP",))
        assert nusc.get("sample_data", s["data"]["LIDAR_TOP"])["timestamp"] == s["timestamp"]


def test_content(mini10):
    _, nusc = mini10
    cats = Counter(_cat(nusc, a) for a in nusc.sample_annotation)
    for c in TRACKED:
        assert cats[c] > 0, c
    assert sum(cats[c] for c in PEDS) > 0 and sum(cats[c] for c in BUSES) > 0
    untracked = set(cats) - TRACKED - PEDS - BUSES
    assert len(untracked) >= 2
    per_sample = len(nusc.sample_annotation) / len(nusc.sample)
    assert 15 < per_sample < 80
    vis = Counter(a["visibility_token"] for a in nusc.sample_annotation)
    assert len(vis) >= 3
    sizes: dict[str, list] = {}
    for a in nusc.sample_annotation:
        sizes.setdefault(_cat(nusc, a), []).append(a["size"])
        assert abs(a["translation"][2] - a["size"][2] / 2) < 0.01
        assert abs(np.linalg.norm(a["rotation"]) - 1) < 1e-6
    car = np.median(sizes["vehicle.car"], axis=0)
    assert 1.6 < car[0] < 2.2 and 3.8 < car[1] < 5.4 and 1.3 < car[2] < 2.1
    ped = np.median(sizes["human.pedestrian.adult"], axis=0)
    assert 0.4 < ped[0] < 0.9 and 1.4 < ped[2] < 2.0
    if "vehicle.bus.rigid" in sizes:
        assert np.median(np.array(sizes["vehicle.bus.rigid"])[:, 1]) > 9
    # instance chains: consistent counts, links skip missing keyframes, timestamps increase
    for inst in nusc.instance:
        tok, n, prev_t = inst["first_annotation_token"], 0, -1
        while tok:
            a = nusc.get("sample_annotation", tok)
            t = nusc.get("sample", a["sample_token"])["timestamp"]
            assert t > prev_t and a["instance_token"] == inst["token"]
            prev_t, last, tok, n = t, tok, a["next"], n + 1
        assert n == inst["nbr_annotations"] and last == inst["last_annotation_token"]
    # moving vehicles: yaw follows the direction of motion
    checked = 0
    for inst in nusc.instance:
        if nusc.get("category", inst["category_token"])["name"] != "vehicle.car":
            continue
        a = nusc.get("sample_annotation", inst["first_annotation_token"])
        while a["next"]:
            b = nusc.get("sample_annotation", a["next"])
            d = np.subtract(b["translation"][:2], a["translation"][:2])
            if np.linalg.norm(d) > 3.0:
                yaw = 2 * np.arctan2(a["rotation"][3], a["rotation"][0])
                ang = np.arctan2(d[1], d[0])
                assert abs((yaw - ang + np.pi) % (2 * np.pi) - np.pi) < 0.5
                checked += 1
            a = b
    assert checked > 20


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic(tmp_path):
    a = generate_dataset(tmp_path / "a", n_scenes=1, seed=5, images=True, progress=False)
    b = generate_dataset(tmp_path / "b", n_scenes=1, seed=5, images=True, progress=False)
    c = generate_dataset(tmp_path / "c", n_scenes=1, seed=6, images=False, progress=False)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert any(k.endswith(".jpg") for k in ha)
    assert ha == hb
    assert ha["v1.0-mini/sample_annotation.json"] != hc["v1.0-mini/sample_annotation.json"]
    # rerun into a complete output with the same parameters: reused; different parameters: refused
    assert generate_dataset(a, n_scenes=1, seed=5, images=True, progress=False) == a
    with pytest.raises(FileExistsError):
        generate_dataset(a, n_scenes=1, seed=7, images=True, progress=False)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="v9.9-bogus"):
        generate_dataset(tmp_path / "x", "v9.9-bogus", n_scenes=1, progress=False)
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "y", "v1.0-mini", n_scenes=11, progress=False)
    with pytest.raises(ValueError):
        generate_dataset(tmp_path / "z", "v1.0-trainval", n_scenes=851, progress=False)
    assert not (tmp_path / "x").exists()


def test_images_show_boxes(tmp_path):
    from PIL import Image

    root = generate_dataset(tmp_path / "img", n_scenes=1, seed=3, images=True, progress=False)
    nusc = _load(root)
    from nuscenes.utils.geometry_utils import view_points

    diffs = []
    for sample in nusc.sample[::4]:
        for ch in CAMERAS:
            path, boxes, k = nusc.get_sample_data(sample["data"][ch])
            img = np.asarray(Image.open(path).convert("RGB"), dtype=float)
            assert img.shape == (900, 1600, 3)
            for box in boxes:
                if box.center[2] < 4 or box.center[2] > 25:
                    continue
                uv = view_points(box.center[:, None], np.asarray(k), normalize=True)[:2, 0]
                u, v = int(uv[0]), int(uv[1])
                if not (10 <= u < 1590 and 10 <= v < 890):
                    continue
                # the box centre pixel carries the box's colour, not the road/sky background of its row
                patch = img[v - 2:v + 3, u - 2:u + 3].reshape(-1, 3).mean(0)
                diffs.append(patch)
    assert len(diffs) > 10
    colours = np.array(diffs)
    road = np.array([82, 84, 88])
    far_from_road = np.linalg.norm(colours - road, axis=1) > 25
    assert far_from_road.mean() > 0.7
