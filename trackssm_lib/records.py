"""Key figures recorded by the notebooks (read back by the smoke tests and the report).

Each notebook writes one JSON file, e.g. ``<output_dir>/01_projection_sanity.json``: plain JSON (sorted keys,
numpy scalars and arrays converted, NaN/inf written as null), written to a temporary file and renamed so a reader
never sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from trackssm_lib.fileio import write_json_atomic


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (identifies checkpoints for result reuse)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` made of JSON types only (dict keys become strings)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (str, type(None))):
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # other numpy scalars
        return to_jsonable(value.item())
    raise TypeError(f"cannot record a value of type {type(value).__name__}: {value!r}")


def record_figures(path: str | Path, figures: dict, merge: bool = False) -> Path:
    """Write ``figures`` as JSON to ``path`` atomically; with ``merge`` the keys are added to an existing file."""
    if not isinstance(figures, dict):
        raise TypeError(f"figures must be a dict, not {type(figures).__name__}")
    path = Path(path)
    data = load_figures(path) if merge and path.exists() else {}
    data.update(to_jsonable(figures))
    return write_json_atomic(path, data, indent=2, sort_keys=True, allow_nan=False)


def load_figures(path: str | Path) -> dict:
    """The figures recorded in ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recorded figures at {path}")
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data
