"""Shared fixtures: the real data in ../shared (skipped with a clear message when absent)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REAL_SCENE = SHARED_DATA / "nuscenes-mini-scene-0916"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (it lives in ../shared/data beside the checkout; CI has it)")
    return path


@pytest.fixture(scope="session")
def real_scene_root() -> Path:
    return require_shared(REAL_SCENE)


@pytest.fixture(scope="session")
def real_nusc(real_scene_root):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version="v1.0-mini", dataroot=str(real_scene_root), verbose=False)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small synthetic v1.0-mini dataset (3 scenes, no images) shared by the tests."""
    from trackssm_lib.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synth") / "nusc", version="v1.0-mini", n_scenes=3, seed=7,
                            images=False, progress=False)


@pytest.fixture(scope="session")
def synth_nusc(synth_root):
    from trackssm_lib.nuscenes_db import load_nuscenes

    return load_nuscenes(synth_root, "v1.0-mini")


@pytest.fixture(scope="session")
def export_split(tmp_path_factory) -> Path:
    """A small synthetic export (2 scenes, 2 cameras): the split folder with the most sequences (read only)."""
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("export_split")
    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", cameras=["CAM_FRONT", "CAM_BACK"], progress=False)
    splits = [p for p in (tmp / "export").iterdir() if p.is_dir() and list(p.glob("*/gt/gt.txt"))]
    return max(splits, key=lambda p: len(list(p.glob("*/gt/gt.txt"))))


@pytest.fixture
def no_boxmot(monkeypatch):
    """``import boxmot`` fails inside the test, as on a machine without the optional extra."""
    import sys

    for mod in [m for m in sys.modules if m == "boxmot" or m.startswith("boxmot.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "boxmot", None)


@pytest.fixture
def needs_boxmot():
    """Skip, with the reason, where the optional BoxMOT extra is not installed (``make test`` installs it)."""
    pytest.importorskip("boxmot.trackers", reason="optional extra boxmot not installed (make test installs it)")


@pytest.fixture
def assert_box_outputs_reset():
    """``check(got, ref)``: every weight of ``ref`` is kept in ``got`` except the decoder heads' output layers
    (``normal_bboxes``), which are zero: a start checkpoint of the other box coder."""
    import torch

    def check(got: dict, ref: dict) -> None:
        for key, value in ref.items():
            if ".normal_bboxes." in key:
                assert torch.count_nonzero(got[key]) == 0, key
            else:
                assert torch.equal(got[key], value), key

    return check
