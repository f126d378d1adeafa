"""Loading nuScenes tables with the real devkit, with errors that name the missing or broken file."""
from __future__ import annotations

import json
from pathlib import Path

from nuscenes.nuscenes import NuScenes

TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
          "scene", "sample", "sample_data", "sample_annotation", "map")
KNOWN_VERSIONS = ("v1.0-mini", "v1.0-trainval", "v1.0-test")


class DataError(Exception):
    """Bad input data or arguments: the message says which file, key or value."""


def check_dataroot(dataroot: str | Path, version: str) -> Path:
    """Check that DATAROOT/VERSION holds all 13 tables before the devkit is asked to load them."""
    root = Path(dataroot)
    if not root.is_dir():
        raise DataError(f"nuScenes dataroot {root} does not exist or is not a folder")
    if version not in KNOWN_VERSIONS:
        raise DataError(f"unknown nuScenes version {version!r}; expected one of {KNOWN_VERSIONS}")
    table_dir = root / version
    if not table_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("v1.0"))
        raise DataError(f"no table folder {table_dir} for version {version!r}"
                        + (f"; this dataroot has {found}" if found else ""))
    missing = [t for t in TABLES if not (table_dir / f"{t}.json").is_file()]
    if missing:
        raise DataError(f"missing nuScenes table(s) in {table_dir}: " + ", ".join(f"{t}.json" for t in missing))
    return table_dir


def table_checksums(dataroot: str | Path, version: str) -> dict[str, str]:
    """sha256 of each of the 13 tables of DATAROOT/VERSION: the dataset's identity by content, so that a moved or
    copied dataroot is recognised and a changed table is not (see the export's ``export.json``)."""
    from trackssm_lib.records import file_sha256

    table_dir = check_dataroot(dataroot, version)
    return {t: file_sha256(table_dir / f"{t}.json") for t in TABLES}


def load_nuscenes(dataroot: str | Path, version: str, verbose: bool = False) -> NuScenes:
    """Load a nuScenes dataroot (real or synthetic) with the devkit; raises DataError on bad input."""
    table_dir = check_dataroot(dataroot, version)
    try:
        return NuScenes(version=version, dataroot=str(dataroot), verbose=verbose)
    except json.JSONDecodeError as err:
        bad = _find_bad_json(table_dir)
        raise DataError(f"cannot parse {bad or table_dir}: {err}") from err
    except (KeyError, IndexError, TypeError, AssertionError) as err:
        from trackssm_lib.validation import first_reference_error

        named = first_reference_error(lambda name: _read_table(table_dir, name), table_dir)
        raise (named or DataError(f"nuScenes tables in {table_dir} are inconsistent "
                                  f"({type(err).__name__}: {err})")) from err


def _read_table(table_dir: Path, name: str) -> object:
    with open(table_dir / f"{name}.json") as f:
        return json.load(f)


def _find_bad_json(table_dir: Path) -> Path | None:
    for table in TABLES:
        path = table_dir / f"{table}.json"
        try:
            with open(path) as f:
                json.load(f)
        except json.JSONDecodeError:
            return path
    return None
