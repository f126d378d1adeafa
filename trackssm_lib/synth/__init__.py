"""Synthetic nuScenes generator: a dataset in the real nuScenes schema (13 tables, official scene names,
6-camera rig at 12 Hz, 2 Hz annotated keyframes, keyframe JPEGs) that the real nuscenes-devkit loads.

Modules: `scenes` (official names, logs), `sensors` (camera rig and timing), `ego` (speed profiles, ego
motion), `world` (road network and agents), `visibility` (occlusion, lidar counts), `render` (JPEGs),
`tables` (records and the streaming JSON writer).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .catalog import attribute_records, category_records, fixed_token, visibility_records
from .scenes import VERSIONS, plan_logs, select_scenes
from .sensors import CHANNELS, LIDAR, make_rig

__all__ = ["generate_dataset", "VERSIONS"]

MANIFEST = "synth.json"
FORMAT = 1


def _manifest(version: str, n_scenes: int | None, seed: int, images: bool, names: list[str]) -> dict:
    return {"generator": "trackssm_lib.synth", "format": FORMAT, "version": version, "seed": int(seed),
            "n_scenes": None if n_scenes is None else int(n_scenes), "images": bool(images), "scenes": names,
            "complete": True}


def _map_png(path: Path, location: str) -> None:
    """A small deterministic placeholder map raster for a location."""
    from PIL import Image

    rng = np.random.default_rng(int(fixed_token("map", location)[:8], 16))
    arr = (rng.random((64, 64)) > 0.5).astype(np.uint8) * 255
    Image.fromarray(arr, "L").save(path, "PNG")


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def generate_dataset(out: str | Path, version: str = "v1.0-mini", n_scenes: int | None = None, seed: int = 0,
                     images: bool = True, progress: bool = True) -> Path:
    """Write DIR/<version>/*.json (13 tables), DIR/maps/*.png, DIR/samples/CAM_*/*.jpg (if images). Returns DIR.

    Deterministic: the same arguments give byte-identical files. Built in a temporary sibling folder and
    renamed into place; an existing non-empty DIR is reused when its `synth.json` manifest records the same
    generation parameters, and refused otherwise."""
    names = select_scenes(version, n_scenes)  # validates version and n_scenes
    out = Path(out)
    want = _manifest(version, n_scenes, seed, images, names)
    if out.exists() and any(out.iterdir()):
        man = out / MANIFEST
        if man.is_file():
            try:
                have = json.loads(man.read_text())
            except (OSError, ValueError):
                have = None
            if have == want:
                return out
            raise FileExistsError(f"{out} already holds a different synthetic dataset ({man}: version="
                                  f"{have.get('version') if have else '?'}, seed={have.get('seed') if have else '?'},"
                                  f" n_scenes={have.get('n_scenes') if have else '?'}, images="
                                  f"{have.get('images') if have else '?'}); choose another folder or delete it")
        raise FileExistsError(f"{out} exists and is not empty (and is not a synthetic dataset output); "
                              "choose another folder or delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.synth-tmp-*"):  # left by a killed run (its process is gone)
        if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.synth-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _generate(tmp, version, names, seed, images, progress)
        (tmp / MANIFEST).write_text(json.dumps(want, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _generate(root: Path, version: str, names: list[str], seed: int, images: bool, progress: bool) -> None:
    from .tables import TableWriter, build_scene

    table_dir = root / version
    maps_dir = root / "maps"
    maps_dir.mkdir(parents=True)
    grng = np.random.default_rng([seed, 1])
    logs = plan_logs(grng, len(names))
    writer = TableWriter(table_dir)
    sensor_tokens = {ch: fixed_token("sensor", ch) for ch in CHANNELS}
    try:
        writer.write("category", category_records())
        writer.write("attribute", attribute_records())
        writer.write("visibility", visibility_records())
        writer.write("sensor", [{"token": sensor_tokens[ch], "channel": ch,
                                 "modality": "lidar" if ch == LIDAR else "camera"} for ch in CHANNELS])
        log_tokens = [fixed_token("log", seed, lg.logfile, lg.index) for lg in logs]
        writer.write("log", [{"token": log_tokens[i], "logfile": lg.logfile, "vehicle": lg.vehicle,
                              "date_captured": lg.date, "location": lg.location} for i, lg in enumerate(logs)])
        maps = []
        for loc in sorted({lg.location for lg in logs}):
            fname = f"maps/{fixed_token('map', loc)}.png"
            _map_png(root / fname, loc)
            maps.append({"token": fixed_token("map-record", seed, loc),
                         "log_tokens": [log_tokens[i] for i, lg in enumerate(logs) if lg.location == loc],
                         "category": "semantic_prior", "filename": fname})
        writer.write("map", maps)
        jobs = [(lg, si) for lg in logs for si in lg.scenes]
        it = jobs
        if progress:
            from tqdm import tqdm

            it = tqdm(jobs, desc=f"synth {version}", unit="scene")
        rig = None
        cur_log = -1
        t_next = 0
        for lg, si in it:
            if lg.index != cur_log:
                cur_log = lg.index
                rig = make_rig(np.random.default_rng([seed, 7, lg.index]))
                t_next = lg.start_us + int(np.random.default_rng([seed, 9, lg.index]).integers(20, 90)) * 1_000_000
            recs, end_us = build_scene(seed, si, names[si], lg, log_tokens[lg.index], rig, sensor_tokens, t_next,
                                       root if images else None)
            t_next = end_us + int(np.random.default_rng([seed, 10, si]).integers(5, 120)) * 1_000_000
            for table, rows in recs.items():
                writer.write(table, rows)
    finally:
        writer.close()
