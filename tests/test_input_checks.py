"""The nuScenes tables are checked before any export work: one corrupted value at a time, in every field the export
reads, ends in a named error with nothing written, or in output identical to the uncorrupted run (a counted warning
where a value was repaired); never in a silently different box."""
from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import shutil
from pathlib import Path

import pytest

from trackssm_lib.export import prepare
from trackssm_lib.nuscenes_db import DataError, TABLES
from trackssm_lib.validation import SIZE_LIMITS_M, UNIT_TOLERANCE

VERSION = "v1.0-mini"
CAMERAS = ["CAM_FRONT", "CAM_BACK_LEFT"]
SEQUENCE_FILES = ("gt/gt.txt", "gt/ids.csv", "frames.csv", "seqinfo.ini", "camera.csv")

VECTOR = ("nan", "inf", "huge", "wrong_shape", "wrong_type")
POSITIVE_VECTOR = ("nan", "inf", "negative", "zero", "huge", "wrong_shape", "wrong_type")
ROTATION = ("nan", "inf", "negative", "zero", "huge", "wrong_shape", "wrong_type")
TOKEN = ("dangling", "wrong_type")
TIMESTAMP = ("nan", "negative", "zero", "huge", "wrong_type")
# (table, field) -> corruptions that make the value invalid (a negative or zero translation is a valid position,
# so it is not among them; a negated quaternion is the same rotation, so its export must not change)
FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sample_annotation", "translation"): VECTOR,
    ("sample_annotation", "size"): POSITIVE_VECTOR,
    ("sample_annotation", "rotation"): ROTATION,
    ("sample_annotation", "instance_token"): TOKEN,
    ("sample_annotation", "sample_token"): TOKEN,
    ("sample_annotation", "visibility_token"): TOKEN,
    ("ego_pose", "translation"): VECTOR,
    ("ego_pose", "rotation"): ROTATION,
    ("calibrated_sensor", "translation"): VECTOR,
    ("calibrated_sensor", "rotation"): ROTATION,
    ("calibrated_sensor", "camera_intrinsic"): POSITIVE_VECTOR,
    ("calibrated_sensor", "sensor_token"): TOKEN,
    ("sample_data", "timestamp"): TIMESTAMP,
    ("sample_data", "sample_token"): TOKEN,
    ("sample_data", "ego_pose_token"): TOKEN,
    ("sample_data", "calibrated_sensor_token"): TOKEN,
    ("sample_data", "next"): TOKEN,
    ("sample_data", "is_key_frame"): ("wrong_type",),
    ("sample_data", "filename"): ("wrong_type",),
    ("sample", "timestamp"): TIMESTAMP,
    ("sample", "scene_token"): TOKEN,
    ("sample", "next"): TOKEN,
    ("scene", "first_sample_token"): TOKEN,
    ("scene", "last_sample_token"): TOKEN,
    ("scene", "log_token"): TOKEN,
    ("scene", "name"): ("wrong_type",),
    ("instance", "category_token"): TOKEN,
    ("category", "name"): ("wrong_type",),
    ("sensor", "channel"): ("wrong_type",),
    ("sensor", "modality"): ("wrong_type",),
}
CASES = [(table, field, kind) for (table, field), kinds in FIELDS.items() for kind in kinds]


def corrupt(value, kind: str):
    """The corrupted value: applied to the whole field (vectors and matrices element-wise)."""
    if kind == "dangling":
        return "0" * 32
    if kind == "wrong_type":
        return 5 if isinstance(value, str) else "abc"
    if kind == "wrong_shape":
        return value[:-1] if isinstance(value[0], (int, float)) else [row[:-1] for row in value[:-1]]
    if isinstance(value, list):
        return [corrupt(v, kind) for v in value]
    if isinstance(value, bool):
        return "abc"
    return {"nan": math.nan, "inf": math.inf, "negative": -value, "zero": 0 * value,
            "huge": value * 10 ** 12}[kind]


def _tables(root: Path) -> dict[str, list]:
    return {t: json.loads((root / VERSION / f"{t}.json").read_text()) for t in TABLES}


def _read_records(tables: dict[str, list]) -> dict[str, list[int]]:
    """Per table, the indices of records the export reads for CAMERAS (where corrupting one must matter)."""
    sensors = {s["token"] for s in tables["sensor"] if s["channel"] in CAMERAS}
    calib = {c["token"] for c in tables["calibrated_sensor"] if c["sensor_token"] in sensors}
    frames = [i for i, sd in enumerate(tables["sample_data"]) if sd["calibrated_sensor_token"] in calib]
    poses = {tables["sample_data"][i]["ego_pose_token"] for i in frames}
    categories = {i["category_token"] for i in tables["instance"]}
    every = {t: list(range(len(rows))) for t, rows in tables.items()}
    return {**every, "sample_data": frames,
            "sensor": [i for i, s in enumerate(tables["sensor"]) if s["token"] in sensors],
            "calibrated_sensor": [i for i, c in enumerate(tables["calibrated_sensor"]) if c["token"] in calib],
            "ego_pose": [i for i, p in enumerate(tables["ego_pose"]) if p["token"] in poses],
            "category": [i for i, c in enumerate(tables["category"]) if c["token"] in categories
                         and c["name"] == "vehicle.car"]}


def _canonical(path: Path) -> bytes:
    """A file's bytes; ``camera.csv`` with each pose quaternion's sign fixed (q and -q are the same rotation)."""
    if path.name != "camera.csv":
        return path.read_bytes()
    import numpy as np

    rows = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    rows[:, 4:8] *= np.where(rows[:, 4:5] < 0, -1.0, 1.0)
    return np.round(rows, 6).tobytes()


def _sequence_hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(_canonical(p)).hexdigest()
            for rel in SEQUENCE_FILES for p in sorted(out.glob(f"*/*/{rel}"))}


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory):
    """A one-scene synthetic dataset, its tables in memory and its export's files (the uncorrupted run)."""
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("fuzz")
    root = generate_dataset(tmp / "nusc", version=VERSION, n_scenes=1, seed=11, images=False, progress=False)
    prepare(root, VERSION, tmp / "clean", cameras=CAMERAS, progress=False)
    tables = _tables(root)
    return root, tables, _read_records(tables), _sequence_hashes(tmp / "clean")


@pytest.mark.parametrize("table, field, kind", CASES, ids=[f"{t}.{f}-{k}" for t, f, k in CASES])
def test_one_corrupted_value_is_named_or_harmless(fuzz_base, tmp_path, table, field, kind):
    root, tables, readable, clean = fuzz_base
    rng = random.Random(f"{table}.{field}.{kind}")  # seeded per case: the same record every run
    index = rng.choice(readable[table])
    rows = copy.deepcopy(tables[table])
    rows[index][field] = corrupt(rows[index][field], kind)
    bad = tmp_path / "nusc"
    shutil.copytree(root, bad)
    (bad / VERSION / f"{table}.json").write_text(json.dumps(rows))
    out = tmp_path / "out"
    try:
        stats = prepare(bad, VERSION, out, cameras=CAMERAS, progress=False)
    except DataError as err:
        message = str(err)
        assert f"{table}.json" in message and field in message and rows[index]["token"] in message, message
        assert not out.exists(), "a refused export writes nothing"
        return
    assert _sequence_hashes(out) == clean, f"{table}.{field} {kind}: exported without an error but not identical"
    repaired = kind in ("huge",) and field == "rotation"
    assert (stats.get("input_warnings") or {}) == (
        {f"{table}.rotation normalised (not of unit length)": 1} if repaired else {}), stats.get("input_warnings")


def test_the_issue_cases_are_named(fuzz_base, tmp_path):
    """The values a user found silently wrong: a 1e6 m size, a NaN or negative size, a zero quaternion, a 2x3 or 3x4
    intrinsic matrix; each stops with the table, record, field and value, before anything is written."""
    root, tables, readable, _ = fuzz_base
    ann = readable["sample_annotation"][0]
    cam = readable["calibrated_sensor"][0]
    k = tables["calibrated_sensor"][cam]["camera_intrinsic"]
    cases = [("sample_annotation", ann, "size", [1e6, 1e6, 1e6], "physical limit"),
             ("sample_annotation", ann, "size", [math.nan, 1.0, 1.0], "not finite"),
             ("sample_annotation", ann, "size", [-1.0, 1.0, 1.0], "must be positive"),
             ("sample_annotation", ann, "rotation", [0, 0, 0, 0], "zero quaternion"),
             ("calibrated_sensor", cam, "camera_intrinsic", [r for r in k[:2]], "3x3"),
             ("calibrated_sensor", cam, "camera_intrinsic", [r + [0.0] for r in k], "3x3")]
    for table, index, field, value, why in cases:
        rows = copy.deepcopy(tables[table])
        rows[index][field] = value
        bad = tmp_path / f"{table}-{field}-{len(str(value))}"
        shutil.copytree(root, bad)
        (bad / VERSION / f"{table}.json").write_text(json.dumps(rows))
        with pytest.raises(DataError, match=why) as err:
            prepare(bad, VERSION, bad / "out", cameras=CAMERAS, progress=False)
        assert str(bad / VERSION / f"{table}.json") in str(err.value) and rows[index]["token"] in str(err.value)
        assert not (bad / "out").exists()


def test_limits_hold_for_the_real_scene(real_nusc):
    """The physical limits are bounds, not annotation style: the real nuScenes scene passes them untouched."""
    from trackssm_lib.validation import validate_tables

    assert validate_tables(copy.copy(real_nusc)) == {}
    assert set(SIZE_LIMITS_M) == {"car", "truck", "bus", "trailer", "pedestrian", "motorcycle", "bicycle"}
    assert UNIT_TOLERANCE < 1e-3
