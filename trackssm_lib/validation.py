"""Checks of the nuScenes tables before any export work, so that a broken value stops with its name instead of
becoming a wrong box.

Two entry points:

* :func:`check_references` (plain tables, before or after the devkit has loaded them): every token the export
  follows resolves (``scene -> sample -> sample_annotation / sample_data -> ego_pose / calibrated_sensor -> sensor``,
  ``instance -> category``, ``visibility``, ``log``) and chains (``next``/``prev``) stay inside their table.
* :func:`validate_tables` (a loaded devkit database): the references, then the values the export reads: sizes finite,
  positive and within physical limits per class, rotations finite and non-zero, translations finite and within
  physical limits, camera intrinsics 3x3, finite, with positive focal lengths and last row ``0 0 1``, timestamps
  positive integers increasing along every ``sample`` and ``sample_data`` chain, and the types of the strings and
  flags the export reads.

A violation raises :class:`~trackssm_lib.nuscenes_db.DataError` naming the table file, the record's token, the field
and the value. The one thing the devkit itself tolerates, a rotation quaternion that is not of unit length, is
normalised in the loaded database and counted: the counts are returned (the export writes them to ``stats.json``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from trackssm_lib.constants import tracking_class
from trackssm_lib.nuscenes_db import DataError

Tables = Mapping[str, Sequence[dict]]

MAX_GLOBAL_M = 1.0e5        # ego poses and annotations: map coordinates (nuScenes maps span a few km)
MAX_SENSOR_M = 50.0         # a sensor's offset from the ego frame
MAX_INTRINSIC = 1.0e5       # focal lengths and principal point, pixels
MAX_SIZE_M = 50.0           # any annotated object (width, length, height)
# width, length, height upper limits per tracking class, metres: generous physical bounds, not annotation style
SIZE_LIMITS_M: dict[str, tuple[float, float, float]] = {
    "pedestrian": (4.0, 4.0, 4.0), "bicycle": (3.0, 5.0, 3.5), "motorcycle": (3.0, 5.0, 3.5),
    "car": (5.0, 12.0, 5.0), "bus": (6.0, 30.0, 7.0), "truck": (6.0, 30.0, 7.0), "trailer": (6.0, 40.0, 7.0),
}
UNIT_TOLERANCE = 1.0e-6     # |norm - 1| above this: the quaternion is normalised and counted
ZERO_NORM = 1.0e-9          # a quaternion this short has no rotation: an error
MAX_TIMESTAMP_US = 10 ** 17  # microseconds since 1970: beyond year 5000
MAX_SAMPLE_GAP_US = 2_000_000  # a sample_data record lies within 2 s of its sample (keyframes: same instant)

# (table, field) -> table the token must resolve in; "" allowed where the field is optional
REFERENCES: tuple[tuple[str, str, str, bool], ...] = (
    ("scene", "first_sample_token", "sample", False),
    ("scene", "last_sample_token", "sample", False),
    ("scene", "log_token", "log", False),
    ("sample", "scene_token", "scene", False),
    ("sample", "next", "sample", True),
    ("sample", "prev", "sample", True),
    ("sample_annotation", "sample_token", "sample", False),
    ("sample_annotation", "instance_token", "instance", False),
    ("sample_annotation", "visibility_token", "visibility", True),
    ("instance", "category_token", "category", False),
    ("sample_data", "sample_token", "sample", False),
    ("sample_data", "ego_pose_token", "ego_pose", False),
    ("sample_data", "calibrated_sensor_token", "calibrated_sensor", False),
    ("sample_data", "next", "sample_data", True),
    ("sample_data", "prev", "sample_data", True),
    ("calibrated_sensor", "sensor_token", "sensor", False),
)
STRINGS: tuple[tuple[str, str], ...] = (
    ("scene", "name"), ("log", "logfile"), ("category", "name"), ("sensor", "channel"), ("sensor", "modality"),
    ("sample_data", "filename"),
)


def _where(root: Path | None, table: str) -> str:
    return str(root / f"{table}.json") if root is not None else f"{table}.json"


def _error(root: Path | None, table: str, record: Any, field: str, value: Any, why: str) -> DataError:
    token = record.get("token", "?") if isinstance(record, dict) else "?"
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return DataError(f"{_where(root, table)}: record {token}: {field} = {shown}: {why}")


def _records(tables: Tables, root: Path | None, table: str) -> Sequence[dict]:
    records = tables.get(table)
    if not isinstance(records, list):
        raise DataError(f"{_where(root, table)}: expected a list of records, got {type(records).__name__}")
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("token"), str):
            raise _error(root, table, record, "token", record.get("token") if isinstance(record, dict) else record,
                         "every record is an object with a string token")
    return records


def check_references(tables: Tables, root: Path | None = None) -> None:
    """Every token the export follows resolves in its table (``root``: the table folder, for the messages)."""
    tokens = {name: {r["token"] for r in _records(tables, root, name)}
              for name in {t for ref in REFERENCES for t in (ref[0], ref[2])}}
    for table, field, target, optional in REFERENCES:
        known = tokens[target]
        for record in tables[table]:
            value = record.get(field)
            if optional and value == "":
                continue
            if not isinstance(value, str) or value not in known:
                why = ("missing" if field not in record else
                       f"not a token of {target}.json" + (" (or empty)" if optional else ""))
                raise _error(root, table, record, field, value, why)


def _vector_problem(value: Any, width: int, limit: float) -> str | None:
    if not isinstance(value, (list, tuple)) or len(value) != width:
        return f"expected a list of {width} numbers"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        return f"expected a list of {width} numbers"
    if not all(math.isfinite(v) for v in value):
        return "not finite"
    if any(abs(v) > limit for v in value):
        return f"beyond the physical limit of {limit:g}"
    return None


def _vectors(records: Sequence[dict], field: str, width: int, limit: float, root: Path | None,
             table: str) -> np.ndarray:
    """(N, width) array of a numeric field; DataError on the first record that is not ``width`` finite numbers
    within +-``limit``. Vectorised; the record-by-record scan runs only to name a bad record."""
    try:
        values = np.array([r[field] for r in records], dtype=np.float64).reshape(len(records), -1)
        ok = values.shape[1] == width and bool(np.all(np.isfinite(values))) and bool(np.all(np.abs(values) <= limit))
    except (KeyError, TypeError, ValueError):
        ok = False
    if ok:
        return values
    for record in records:
        problem = "missing" if field not in record else _vector_problem(record[field], width, limit)
        if problem:
            raise _error(root, table, record, field, record.get(field), problem)
    return np.array([r[field] for r in records], dtype=np.float64).reshape(len(records), width)


def _normalise_rotations(records: Sequence[dict], root: Path | None, table: str) -> int:
    """Check ``rotation`` (w, x, y, z); normalise in place the ones not of unit length; return how many."""
    q = _vectors(records, "rotation", 4, math.inf, root, table)
    norm = np.linalg.norm(q, axis=1)
    if len(norm) and norm.min() <= ZERO_NORM:
        i = int(np.argmin(norm))
        raise _error(root, table, records[i], "rotation", records[i]["rotation"], "a zero quaternion is no rotation")
    off = np.flatnonzero(np.abs(norm - 1.0) > UNIT_TOLERANCE)
    for i in off:
        records[i]["rotation"] = (q[i] / norm[i]).tolist()
    return int(len(off))


def _check_sizes(records: Sequence[dict], root: Path | None) -> None:
    size = _vectors(records, "size", 3, math.inf, root, "sample_annotation")
    limits = np.array([SIZE_LIMITS_M.get(tracking_class(r.get("category_name", "")) or "", (MAX_SIZE_M,) * 3)
                       for r in records]).reshape(-1, 3)
    bad = np.flatnonzero(np.any(size <= 0, axis=1) | np.any(size > limits, axis=1))
    if len(bad):
        r = records[bad[0]]
        cls = tracking_class(r.get("category_name", "")) or r.get("category_name", "object")
        why = ("width, length and height must be positive" if np.any(size[bad[0]] <= 0) else
               f"beyond the physical limit (width, length, height) <= {tuple(limits[bad[0]])} m for a {cls}")
        raise _error(root, "sample_annotation", r, "size", r["size"], why)


def _check_intrinsics(tables: Tables, root: Path | None) -> None:
    cameras = {s["token"] for s in tables["sensor"] if s.get("modality") == "camera"}
    for record in tables["calibrated_sensor"]:
        if record["sensor_token"] not in cameras:
            continue
        value = record.get("camera_intrinsic")
        rows = value if isinstance(value, list) and len(value) == 3 else None
        problem = None if rows and all(_vector_problem(row, 3, MAX_INTRINSIC) is None for row in rows) else \
            f"a camera's intrinsic matrix must be 3x3 finite numbers within +-{MAX_INTRINSIC:g}"
        if problem is None:
            k = np.array(rows, dtype=np.float64)
            if k[0, 0] <= 0 or k[1, 1] <= 0:
                problem = "focal lengths (fx, fy) must be positive"
            elif not np.array_equal(k[2], [0.0, 0.0, 1.0]) or k[1, 0] != 0:
                problem = "the matrix must have the form [[fx, s, cx], [0, fy, cy], [0, 0, 1]]"
        if problem:
            raise _error(root, "calibrated_sensor", record, "camera_intrinsic", value, problem)


def _timestamps(records: Sequence[dict], root: Path | None, table: str) -> np.ndarray:
    for record in records:
        value = record.get("timestamp")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TIMESTAMP_US:
            raise _error(root, table, record, "timestamp", value,
                         f"expected a positive integer of microseconds, at most {MAX_TIMESTAMP_US:.0e}")
    return np.array([r["timestamp"] for r in records], dtype=np.int64)


def _check_chain(records: Sequence[dict], times: np.ndarray, root: Path | None, table: str) -> None:
    """Timestamps strictly increase along the ``next`` links."""
    index = {r["token"]: i for i, r in enumerate(records)}
    for i, record in enumerate(records):
        nxt = record.get("next", "")
        if nxt and times[index[nxt]] <= times[i]:
            raise _error(root, table, records[index[nxt]], "timestamp", int(times[index[nxt]]),
                         f"not after its predecessor {record['token']} ({int(times[i])}) in the next chain")


def _check_types(tables: Tables, root: Path | None) -> None:
    for table, field in STRINGS:
        for record in tables[table]:
            if not isinstance(record.get(field), str) or not record[field]:
                raise _error(root, table, record, field, record.get(field), "expected a non-empty string")
    for record in tables["visibility"]:
        if not record["token"].isdigit():  # the export stores visibility as the level's number
            raise _error(root, "visibility", record, "token", record["token"], "expected a level number (1-4)")
    for record in tables["sample_data"]:
        if not isinstance(record.get("is_key_frame"), bool):
            raise _error(root, "sample_data", record, "is_key_frame", record.get("is_key_frame"),
                         "expected true or false")


def check_values(tables: Tables, root: Path | None = None) -> dict[str, int]:
    """Check the values the export reads (tables after :func:`check_references`); normalise rotations that are not
    of unit length; return warning counts ``{"<table>.rotation normalised": n}`` (only non-zero ones)."""
    _check_types(tables, root)
    warnings: dict[str, int] = {}
    for table, limit in (("sample_annotation", MAX_GLOBAL_M), ("ego_pose", MAX_GLOBAL_M),
                         ("calibrated_sensor", MAX_SENSOR_M)):
        _vectors(tables[table], "translation", 3, limit, root, table)
        if n := _normalise_rotations(tables[table], root, table):
            warnings[f"{table}.rotation normalised (not of unit length)"] = n
    _check_sizes(tables["sample_annotation"], root)
    _check_intrinsics(tables, root)
    times = {table: _timestamps(tables[table], root, table) for table in ("sample", "sample_data")}
    for table in ("sample", "sample_data"):
        _check_chain(tables[table], times[table], root, table)
    _check_sample_gap(tables, times, root)
    return warnings


def _check_sample_gap(tables: Tables, times: Mapping[str, np.ndarray], root: Path | None) -> None:
    """Every sample_data record lies within MAX_SAMPLE_GAP_US of the sample it belongs to."""
    index = {r["token"]: i for i, r in enumerate(tables["sample"])}
    own = np.array([index[r["sample_token"]] for r in tables["sample_data"]], dtype=np.int64)
    gap = np.abs(times["sample_data"] - times["sample"][own]) if len(own) else np.zeros(0)
    if len(gap) and gap.max() > MAX_SAMPLE_GAP_US:
        i = int(np.argmax(gap))
        record, sample = tables["sample_data"][i], tables["sample"][own[i]]
        raise _error(root, "sample_data", record, "timestamp", record["timestamp"],
                     f"{gap[i] / 1e6:.3g} s from its sample {sample['token']} (timestamp {sample['timestamp']}); "
                     f"one of the two is wrong")


def validate_tables(nusc: Any) -> dict[str, int]:
    """Check a loaded devkit database once (the result is kept on it): references, then values; returns the warning
    counts. Raises DataError naming the table file, record, field and value."""
    done = getattr(nusc, "_trackssm_input_warnings", None)
    if done is not None:
        return dict(done)
    root = Path(nusc.table_root)
    tables = {name: getattr(nusc, name) for name in
              ("scene", "sample", "sample_annotation", "sample_data", "ego_pose", "calibrated_sensor", "sensor",
               "instance", "category", "visibility", "log")}
    check_references(tables, root)
    warnings = check_values(tables, root)
    nusc._trackssm_input_warnings = warnings
    return dict(warnings)


def first_reference_error(load_table: Callable[[str], Any], root: Path) -> DataError | None:
    """The named reference error in tables the devkit could not index (None when the references hold)."""
    tables = {name: load_table(name) for name in {t for ref in REFERENCES for t in (ref[0], ref[2])}}
    try:
        check_references(tables, root)
    except DataError as err:
        return err
    return None
