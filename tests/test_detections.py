"""Detections: gt / noisy profiles from a synthetic export, external MOT files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.constants import CLASS_IDS
from trackssm_lib.detections import (
    DetectionError,
    get_default_config,
    load_detections,
    read_detection_file,
)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("det")
    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", progress=False)
    return tmp / "export"


@pytest.fixture(scope="module")
def seq_dirs(export_dir) -> list[Path]:
    return sorted(p.parent for p in export_dir.glob("*/*/seqinfo.ini"))


def _gt(seq_dir: Path) -> np.ndarray:
    return np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)


def test_gt_profile_exact(seq_dirs):
    d = seq_dirs[0]
    gt = _gt(d)
    dets = load_detections("gt", d)
    length = int([ln for ln in (d / "seqinfo.ini").read_text().splitlines() if ln.startswith("seqLength")][0]
                 .split("=")[1])
    assert sorted(dets) == list(range(1, length + 1))
    assert sum(len(v) for v in dets.values()) == len(gt)
    f = int(gt[0, 0])
    rows = gt[gt[:, 0] == f]
    np.testing.assert_allclose(dets[f][:, 0], rows[:, 2])
    np.testing.assert_allclose(dets[f][:, 3], rows[:, 3] + rows[:, 5])
    assert (dets[f][:, 4] == 1).all()
    np.testing.assert_array_equal(dets[f][:, 5], rows[:, 7])
    assert all(v.shape[1] == 6 for v in dets.values())


def test_noisy_deterministic_by_seed_and_sequence(seq_dirs):
    d = seq_dirs[0]
    a = load_detections("noisy", d, seed=3)
    b = load_detections("noisy", d, seed=3)
    c = load_detections("noisy", d, seed=4)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    # another sequence gets another stream (same seed)
    other = load_detections("noisy", seq_dirs[1], seed=3)
    assert not all(len(other.get(k, [])) == len(a[k]) for k in a)


def test_noisy_statistics(seq_dirs):
    gt_total, all_dets = 0, []
    for d in seq_dirs[:6]:
        gt = load_detections("gt", d)
        noisy = load_detections("noisy", d, seed=0)
        gt_total += sum(len(v) for v in gt.values())
        all_dets += [v for v in noisy.values() if len(v)]
    dets = np.concatenate(all_dets)
    assert 0.5 * gt_total < len(dets) < 1.3 * gt_total  # misses and false positives
    assert (dets[:, 2] > dets[:, 0]).all() and (dets[:, 3] > dets[:, 1]).all()
    assert (dets[:, 0] >= 0).all() and (dets[:, 2] <= 1600).all() and (dets[:, 3] <= 900).all()
    assert ((dets[:, 4] > 0) & (dets[:, 4] <= 1)).all()
    assert (dets[:, 4] < 0.6).any() and (dets[:, 4] > 0.6).any()
    assert set(np.unique(dets[:, 5]).astype(int)) <= set(range(7))


def test_noisy_config_knobs(seq_dirs):
    d = seq_dirs[0]
    gt = load_detections("gt", d)
    n_gt = sum(len(v) for v in gt.values())
    clean = load_detections("noisy", d, config={"miss_base": 0.0, "miss_small": 0.0, "fp_per_frame": 0.0,
                                                "miss_visibility": {1: 0, 2: 0, 3: 0, 4: 0}})
    assert sum(len(v) for v in clean.values()) >= 0.97 * n_gt  # only boxes clipped to nothing can vanish
    confused = load_detections("noisy", d, config={"confusion_prob": 1.0, "fp_per_frame": 0.0})
    classes = np.concatenate([v[:, 5] for v in confused.values() if len(v)]).astype(int)
    assert CLASS_IDS["car"] not in set(classes) or CLASS_IDS["truck"] in set(classes)
    gt_classes = np.concatenate([v[:, 5] for v in gt.values() if len(v)]).astype(int)
    if (gt_classes == CLASS_IDS["car"]).any():
        assert (classes == CLASS_IDS["truck"]).sum() > 0
        assert (classes == CLASS_IDS["car"]).sum() < (gt_classes == CLASS_IDS["car"]).sum()
    assert (classes == CLASS_IDS["pedestrian"]).sum() <= (gt_classes == CLASS_IDS["pedestrian"]).sum()
    with pytest.raises(DetectionError, match="unknown detection config"):
        load_detections("noisy", d, config={"nope": 1})
    assert "miss_base" in get_default_config()


def test_external_detections(tmp_path, seq_dirs):
    d = seq_dirs[0]
    name = d.name
    folder = tmp_path / "dets"
    folder.mkdir()
    (folder / f"{name}.txt").write_text("# comment\n1,-1,10,20,30,40,0.9,4\n\n3,-1,0,0,5,5,0.3,0,-1,-1\n")
    dets = load_detections(folder, d)
    np.testing.assert_allclose(dets[1], [[10, 20, 40, 60, 0.9, 4]])
    assert dets[2].shape == (0, 6)
    assert dets[3].shape == (1, 6)
    assert max(dets) >= 3


@pytest.mark.parametrize("line, message", [
    ("1,-1,10,20,30", "at least 8"),
    ("1,-1,10,abc,30,40,0.9,4", "non-numeric"),
    ("0,-1,10,20,30,40,0.9,4", "frame"),
    ("1,-1,10,20,-3,40,0.9,4", "width and height"),
    ("1,-1,10,20,30,40,0.9,9", "class_id"),
    ("1,-1,10,20,30,40,nan,4", "non-finite"),
])
def test_external_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "seq.txt"
    path.write_text("1,-1,10,20,30,40,0.9,4\n# fine\n" + line + "\n")
    with pytest.raises(DetectionError, match=message) as info:
        read_detection_file(path)
    assert f"{path}:3" in str(info.value)


def test_missing_file_and_bad_source(tmp_path, seq_dirs):
    with pytest.raises(DetectionError, match="not found"):
        load_detections(tmp_path, seq_dirs[0])
    with pytest.raises(DetectionError, match="not one of"):
        load_detections("yolo", seq_dirs[0])
    assert issubclass(DetectionError, ValueError)
