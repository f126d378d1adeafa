"""Export nuScenes scenes as MOTChallenge-style sequences, one per (scene, camera), at the camera's frame rate.

Layout per sequence ``OUT/<split>/<scene>_<CAMERA>/``: ``gt/gt.txt`` (``frame,track_id,x,y,w,h,1,class_id,
visibility,-1``), ``gt/ids.csv``, ``frames.csv``, ``seqinfo.ini``, ``camera.csv`` (the camera's pose and
intrinsics per frame, :mod:`trackssm_lib.ego_motion`; not for ``linear2d``'s virtual frames) and ``inputs.json``
(a fingerprint of the records and settings the sequence was made from, and the sha256 of each file above); plus
``OUT/seqmaps/<split>.txt``, ``OUT/stats.json`` and ``OUT/export.json`` (the settings and the sha256 of the
source tables; no absolute path, so a moved checkout or dataset keeps its export: ``seqinfo.ini``'s ``imDir`` is
the dataroot relative to the sequence folder).

Before any work the tables are checked (:mod:`trackssm_lib.validation`): a broken value stops the export with the
table, record, field and value, and nothing is written. Each sequence is written to a temporary folder and renamed
into place. A rerun keeps the sequences whose files match ``inputs.json`` and rebuilds the ones with missing or
damaged files. An export made with other settings or from tables whose content changed is refused; with
``overwrite`` the new export is built beside the old one (``.<OUT name>.new``, resumed when interrupted), keeping
the sequences whose inputs did not change, and swapped in only when complete.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from trackssm_lib.constants import CAMERA_FPS, CLASS_NAMES, IMAGE_HEIGHT, IMAGE_WIDTH
from trackssm_lib.ego_motion import CAMERA_FILE, camera_rows, format_camera_csv
from trackssm_lib.fileio import write_json_atomic, write_text_atomic
from trackssm_lib.frames import (CameraFrames, SceneAnnotations, camera_frames, check_cameras, get_scene,
                                 scene_annotations)
from trackssm_lib.interpolation import FrameBoxes, SequenceFrames, check_interp, sequence_boxes
from trackssm_lib.nuscenes_db import DataError, load_nuscenes, table_checksums
from trackssm_lib.projection import CLIP_MODES
from trackssm_lib.splits import available_splits, scene_split_map
from trackssm_lib.validation import validate_tables

_WORKER_NUSC = None  # the database shared with forked workers
INPUTS_FILE = "inputs.json"
EXPORT_FORMAT = 1  # part of every sequence's fingerprint: raise it when the files' content changes for the same input


def sequence_name(scene_name: str, camera: str) -> str:
    return f"{scene_name}_{camera}"


def assign_track_ids(boxes: FrameBoxes) -> tuple[np.ndarray, list[str]]:
    """Track ids 1..n in order of first appearance (frame, then instance token): small and deterministic."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64), []
    order = np.lexsort((boxes.instance_token.astype(str), boxes.frame))
    _, first = np.unique(boxes.instance_token[order].astype(str), return_index=True)
    ordered_instances = boxes.instance_token[order][np.sort(first)]
    ids = {tok: i + 1 for i, tok in enumerate(ordered_instances)}
    return np.array([ids[t] for t in boxes.instance_token], dtype=np.int64), list(ordered_instances)


def format_gt_rows(frame: np.ndarray, track_id: np.ndarray, boxes: np.ndarray, class_id: np.ndarray,
                   visibility: np.ndarray) -> str:
    """MOT rows ``frame,id,x,y,w,h,1,class,visibility,-1`` (3 decimals), sorted by frame then id."""
    order = np.lexsort((track_id, frame))
    x, y = boxes[order, 0], boxes[order, 1]
    w, h = boxes[order, 2] - x, boxes[order, 3] - y
    cols = [frame[order], track_id[order], x, y, w, h, class_id[order], visibility[order]]
    row = "%d,%d,%.3f,%.3f,%.3f,%.3f,1,%d,%d,-1\n"
    flat = np.empty((len(order), 8), dtype=object)
    for j, col in enumerate(cols):
        flat[:, j] = col.tolist()
    return (row * len(order)) % tuple(flat.ravel().tolist())


def camera_file_text(cam: CameraFrames) -> str:
    """``camera.csv`` of a camera's frames: its pose in the global frame and its intrinsics, per frame."""
    return format_camera_csv(camera_rows(cam.ego_translation, cam.ego_rotation, cam.cam_translation,
                                         cam.cam_rotation, cam.intrinsic))


def write_sequence(seq_dir: Path, name: str, frames: SequenceFrames, boxes: FrameBoxes, dataroot: Path,
                   camera_csv: str | None = None) -> dict:
    """Write one sequence folder (the caller renames it into place) and return its statistics.

    ``camera_csv``: the text of ``camera.csv`` (None for frames without poses, i.e. ``linear2d``'s virtual ones).
    """
    (seq_dir / "gt").mkdir(parents=True)
    track_id, instances = assign_track_ids(boxes)
    (seq_dir / "gt" / "gt.txt").write_text(
        format_gt_rows(boxes.frame, track_id, boxes.boxes, boxes.class_id, boxes.visibility))
    cls_of = {t: (c, i) for t, c, i in zip(boxes.instance_token, boxes.class_name, boxes.class_id)}
    (seq_dir / "gt" / "ids.csv").write_text(
        "track_id,instance_token,class_name,class_id\n"
        + "".join(f"{i + 1},{tok},{cls_of[tok][0]},{cls_of[tok][1]}\n" for i, tok in enumerate(instances)))
    (seq_dir / "frames.csv").write_text(
        "frame,sample_data_token,timestamp_us,is_key_frame,filename\n"
        + "".join(f"{f},{t},{ts},{int(k)},{fn}\n" for f, t, ts, k, fn in
                  zip(frames.frame, frames.tokens, frames.timestamps, frames.is_key_frame, frames.filenames)))
    (seq_dir / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir={os.path.relpath(dataroot, seq_dir.resolve())}\nframeRate={CAMERA_FPS}\n"
        f"seqLength={len(frames)}\nimWidth={IMAGE_WIDTH}\nimHeight={IMAGE_HEIGHT}\nimExt=.jpg\n")
    if camera_csv is not None:
        (seq_dir / CAMERA_FILE).write_text(camera_csv)
    return sequence_stats(frames.is_key_frame, boxes.frame, boxes.class_id, track_id)


def sequence_stats(is_key_frame: np.ndarray, frame: np.ndarray, class_id: np.ndarray, track_id: np.ndarray) -> dict:
    on_key = is_key_frame[frame - 1] if len(frame) else np.zeros(0, bool)
    per_class = {name: int(np.sum(class_id == i)) for i, name in enumerate(CLASS_NAMES)}
    tracks = {name: int(len(np.unique(track_id[class_id == i]))) for i, name in enumerate(CLASS_NAMES)}
    return {"frames": int(len(is_key_frame)), "keyframes": int(np.sum(is_key_frame)), "boxes": int(len(frame)),
            "keyframe_boxes": int(np.sum(on_key)), "per_class": per_class, "tracks_per_class": tracks}


def read_sequence_stats(seq_dir: Path) -> dict:
    """Statistics of an already exported sequence, read back from its files."""
    frames = np.loadtxt(seq_dir / "frames.csv", delimiter=",", skiprows=1, usecols=(3,), dtype=np.int64, ndmin=1)
    text = (seq_dir / "gt" / "gt.txt").read_text()
    gt = np.loadtxt(text.splitlines(), delimiter=",", ndmin=2).reshape(-1, 10) if text else np.zeros((0, 10))
    return sequence_stats(frames.astype(bool), gt[:, 0].astype(np.int64), gt[:, 7].astype(np.int64),
                          gt[:, 1].astype(np.int64))


def sequence_fingerprint(nusc, ann: SceneAnnotations, cam: CameraFrames, settings: dict,
                         scene_digest: str | None = None) -> str:
    """sha256 of everything a sequence is made from: the export's format and settings, the scene's samples and
    annotations (``scene_digest`` when already computed) and the camera's frames, ego poses and calibrations."""
    digest = scene_digest or scene_inputs_digest(nusc, ann)
    calibrations = list(dict.fromkeys(nusc.get("sample_data", t)["calibrated_sensor_token"] for t in cam.tokens))
    records = {"format": EXPORT_FORMAT, "settings": {k: settings[k] for k in ("version", "interp", "clip")},
               "scene": digest, "frames": [nusc.get("sample_data", t) for t in cam.tokens],
               "poses": [nusc.get("ego_pose", nusc.get("sample_data", t)["ego_pose_token"]) for t in cam.tokens],
               "calibrations": [nusc.get("calibrated_sensor", t) for t in calibrations]}
    return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()


def scene_inputs_digest(nusc, ann: SceneAnnotations) -> str:
    """sha256 of a scene's samples and keyframe annotations (shared by its cameras' fingerprints)."""
    records = {"samples": [nusc.get("sample", t) for t in ann.sample_tokens],
               "annotations": [nusc.get("sample_annotation", t) for t in ann.ann_tokens]}
    return hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()


def _expected_files(poses: bool) -> list[str]:
    return ["gt/gt.txt", "gt/ids.csv", "frames.csv", "seqinfo.ini"] + ([CAMERA_FILE] if poses else [])


def write_inputs_record(seq_dir: Path, fingerprint: str | None, poses: bool) -> None:
    """``inputs.json``: the sequence's input fingerprint (None: adopted from an export made before fingerprints)
    and the sha256 of each of its files."""
    from trackssm_lib.records import file_sha256

    files = {rel: file_sha256(seq_dir / rel) for rel in _expected_files(poses)}
    write_json_atomic(seq_dir / INPUTS_FILE, {"inputs": fingerprint, "files": files}, indent=1, sort_keys=True)


def sequence_state(seq_dir: Path, poses: bool) -> tuple[str, str | None]:
    """``(state, fingerprint)`` of an exported sequence folder. States: ``absent``; ``complete`` (every file
    matches ``inputs.json``); ``damaged`` (a file missing, changed or truncated, or ``inputs.json`` unreadable);
    ``unrecorded`` (all files present, no ``inputs.json``: made before fingerprints)."""
    from trackssm_lib.records import file_sha256

    if not seq_dir.is_dir():
        return "absent", None
    expected = _expected_files(poses)
    if not (seq_dir / INPUTS_FILE).is_file():
        return ("unrecorded" if all((seq_dir / rel).is_file() for rel in expected) else "damaged"), None
    try:
        record = json.loads((seq_dir / INPUTS_FILE).read_text())
        files = dict(record["files"])
    except (ValueError, KeyError, TypeError):
        return "damaged", None
    for rel in expected:
        path = seq_dir / rel
        if rel not in files or not path.is_file() or file_sha256(path) != files[rel]:
            return "damaged", None
    return "complete", record.get("inputs")


def _point_to_dataroot(seq_dir: Path, dataroot: Path, poses: bool) -> None:
    """Rewrite ``seqinfo.ini``'s ``imDir`` (and its hash in ``inputs.json``) when the dataset now lies elsewhere:
    the sequence's content is the same, only where its images are changed."""
    info = seq_dir / "seqinfo.ini"
    lines = info.read_text().splitlines(keepends=True)
    im_dir = f"imDir={os.path.relpath(dataroot, seq_dir.resolve())}\n"
    if im_dir in lines:
        return
    write_text_atomic(info, "".join(im_dir if line.startswith("imDir=") else line for line in lines))
    record = json.loads((seq_dir / INPUTS_FILE).read_text())
    write_inputs_record(seq_dir, record["inputs"], poses)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _export_scene(task: tuple) -> list[tuple[str, str, dict | None, str]]:
    """Bring one scene's sequences up to date in the build folder; returns ``(split, name, stats, action)`` with
    action ``kept`` / ``adopted`` (up to date, nothing rebuilt), ``written`` / ``repaired`` / ``changed`` (built:
    new, files missing or damaged, inputs changed), ``carried`` (unchanged, linked from the export it replaces),
    ``dropped`` (carry-only and changed: left out)."""
    scene_name, split, cameras, settings, build, old, dataroot, force, carry_only = task
    nusc = _WORKER_NUSC
    poses = settings["interp"] != "linear2d"  # linear2d's virtual frames have no camera pose
    results, ann, digest = [], None, None
    for camera in cameras:
        name = sequence_name(scene_name, camera)
        final = build / split / name
        state, _ = sequence_state(final, poses)
        if state == "complete" and not force:
            _point_to_dataroot(final, dataroot, poses)
            results.append((split, name, None, "kept"))
            continue
        if state == "unrecorded" and not force and old is None:
            write_inputs_record(final, None, poses)
            _point_to_dataroot(final, dataroot, poses)
            results.append((split, name, None, "adopted"))
            continue
        if ann is None:
            ann = scene_annotations(nusc, scene_name)
            digest = scene_inputs_digest(nusc, ann)
        cam = camera_frames(nusc, scene_name, camera, ann)
        fingerprint = sequence_fingerprint(nusc, ann, cam, settings, digest)
        tmp = build / split / f".tmp-{name}-{os.getpid()}"
        try:
            if old is not None and sequence_state(old / split / name, poses) == ("complete", fingerprint):
                shutil.copytree(old / split / name, tmp, copy_function=_link_or_copy)
                _point_to_dataroot(tmp, dataroot, poses)
                stats, action = None, "carried"
            elif carry_only:
                results.append((split, name, None, "dropped"))
                continue
            else:
                frames, boxes = sequence_boxes(nusc, scene_name, camera, settings["interp"], settings["clip"],
                                               annotations=ann, cam=cam)
                stats = write_sequence(tmp, name, frames, boxes, dataroot, camera_file_text(cam) if poses else None)
                write_inputs_record(tmp, fingerprint, poses)
                if old is not None:
                    action = "changed" if (old / split / name).is_dir() else "written"
                else:
                    action = "repaired" if state == "damaged" else "written"
            _replace_dir(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        results.append((split, name, stats, action))
    return results


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def _describe_change(key: str, before: Any, now: Any) -> str:
    if key == "tables" and isinstance(before, dict) and isinstance(now, dict):
        differ = [t for t in now if before.get(t) != now[t]]
        return ("the nuScenes tables' content differs from the exported dataset's (" + ", ".join(
            f"{t}.json sha256 {str(before.get(t))[:12]}, now {now[t][:12]}" for t in differ) + ")")
    if key == "tables":  # an export made before table checksums, from another dataroot
        return f"dataset {before!r} (now the tables of this dataroot)"
    return f"{key}={before!r} (now {now!r})"


def export_identity(export_dir: str | Path) -> str:
    """The export's identity by content (version, interpolation and clipping, the source tables' checksums), not by
    where it or its dataset lie: recorded runs that name it stay valid when the checkout or the dataset moves."""
    manifest = Path(export_dir) / "export.json"
    if not manifest.is_file():
        raise DataError(f"{export_dir} is not a prepared export (no export.json; run `python -m trackssm_lib prepare`)")
    settings = json.loads(manifest.read_text())
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise DataError(f"cannot write to output folder {out}: {err.strerror or err}") from err


def staging_dir(out: Path) -> Path:
    """Where ``overwrite`` builds the export that replaces ``out`` (beside it, so the swap is a rename)."""
    return out.parent / f".{out.name}.new"


def _prepare_out(out: Path, settings: dict, overwrite: bool, dataroot: Path) -> tuple[Path, Path | None]:
    """The folder to build in and the export it replaces: ``(out, None)`` when ``out`` is new or holds an export
    with these settings and tables; ``(staging, out)`` with ``overwrite`` when it holds another; DataError without."""
    _check_writable(out)
    manifest = out / "export.json"
    previous = json.loads(manifest.read_text()) if manifest.exists() else settings
    if "tables" not in previous and "dataroot" in previous and Path(previous["dataroot"]).resolve() == dataroot:
        # written before exports named their source by content: the same dataroot is taken as the same tables
        previous = {**{k: v for k, v in previous.items() if k != "dataroot"}, "tables": settings["tables"]}
    changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
    if changed and not overwrite:
        raise DataError(f"{out} holds an export made with other settings: "
                        + "; ".join(_describe_change(k, a, b) for k, (a, b) in changed.items())
                        + "; use --overwrite (the new export is built beside it, keeping the sequences whose inputs "
                          "did not change, and replaces it when complete) or another --out")
    build = staging_dir(out) if changed else out
    if changed and (build / "export.json").is_file() and json.loads((build / "export.json").read_text()) != settings:
        shutil.rmtree(build)  # an interrupted replacement with yet other settings
    build.mkdir(exist_ok=True)
    for stale in build.glob("*/.tmp-*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    write_json_atomic(build / "export.json", settings, indent=2, sort_keys=True)
    return build, (out if changed else None)


def _swap_in(staging: Path, out: Path) -> None:
    """Replace the export ``out`` by the complete one in ``staging`` (two renames; the old one is then removed)."""
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(out, old)
    os.replace(staging, out)
    shutil.rmtree(old)


def _old_sequences(old: Path, exclude: set[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """(scene, split) -> cameras of the sequences in the replaced export that this run does not select."""
    found: dict[tuple[str, str], list[str]] = {}
    for info in sorted(old.glob("*/*/seqinfo.ini")):
        split, name = info.parent.parent.name, info.parent.name
        scene, _, camera = name.partition("_")
        if (split, name) not in exclude and camera:
            found.setdefault((scene, split), []).append(camera)
    return found


def select_scenes(nusc, split: str, scenes: list[str] | None,
                  max_scenes: int | None = None) -> list[tuple[str, str]]:
    """(scene, split) pairs to export, validated against the database and the split; ``max_scenes``: only the
    first N (scene-table order, or the order of ``scenes``), for subsets of a large split."""
    if max_scenes is not None and int(max_scenes) < 1:
        raise DataError(f"max_scenes must be >= 1, got {max_scenes}")
    valid = available_splits(nusc.version) + ("all",)
    if split not in valid:
        raise DataError(f"unknown split {split!r} for {nusc.version}; expected one of {valid}")
    mapping = scene_split_map(nusc)
    if scenes:
        for name in scenes:
            get_scene(nusc, name)
            if name not in mapping:
                raise DataError(f"scene {name} belongs to no split of {nusc.version}")
            if split != "all" and mapping[name] != split:
                raise DataError(f"scene {name} is in split {mapping[name]!r}, not {split!r}")
        names = list(dict.fromkeys(scenes))
    else:
        names = [s["name"] for s in nusc.scene if s["name"] in mapping
                 and (split == "all" or mapping[s["name"]] == split)]
    return [(name, mapping[name]) for name in names[:max_scenes]]


def prepare(dataroot: str | Path, version: str, out: str | Path, split: str = "all",
            scenes: list[str] | None = None, cameras: list[str] | None = None, interp: str = "3d",
            clip: str = "exact", workers: int = 1, overwrite: bool = False, progress: bool = True,
            nusc=None, max_scenes: int | None = None) -> dict:
    """Export sequences and return the statistics written to ``OUT/stats.json``."""
    check_interp(interp)
    if clip not in CLIP_MODES:
        raise DataError(f"unknown clip mode {clip!r}; expected one of {CLIP_MODES}")
    cameras = list(check_cameras(cameras))
    dataroot, out = Path(dataroot).resolve(), Path(out)
    t0 = time.perf_counter()
    nusc = nusc if nusc is not None else load_nuscenes(dataroot, version)
    load_s = time.perf_counter() - t0
    if nusc.version != version:
        raise DataError(f"the loaded database is {nusc.version}, not {version}")
    warnings = validate_tables(nusc)  # before anything is read for the export or written
    check_s = time.perf_counter() - t0 - load_s
    pairs = select_scenes(nusc, split, scenes, max_scenes)
    if not pairs:
        raise DataError(f"no scenes to export for split {split!r} in {dataroot}")
    settings = {"version": version, "interp": interp, "clip": clip, "tables": table_checksums(dataroot, version)}
    build, old = _prepare_out(out, settings, overwrite, dataroot)
    for sp in {s for _, s in pairs}:
        (build / sp).mkdir(exist_ok=True)
    force = overwrite and old is None  # --overwrite of an export with the same settings: rewrite what is selected
    tasks = [(name, sp, cameras, settings, build, old, dataroot, force, False) for name, sp in pairs]
    if old is not None:  # sequences of the replaced export outside this selection: carried over when unchanged
        selected = {(sp, sequence_name(name, c)) for name, sp in pairs for c in cameras}
        scenes_now = scene_split_map(nusc)
        tasks += [(name, sp, cams, settings, build, old, dataroot, False, True)
                  for (name, sp), cams in _old_sequences(old, selected).items() if scenes_now.get(name) == sp]
    results = _run_tasks(nusc, tasks, workers, progress)
    known = {(sp, name): st for sp, name, st, _ in results if st is not None}
    stats = _write_index(build, version, interp, clip, known, warnings)
    if old is not None:
        _swap_in(build, out)
    actions = [r[3] for r in results]
    stats["_timing"] = {"load_tables_s": round(load_s, 3), "check_tables_s": round(check_s, 3),
                        "export_s": round(time.perf_counter() - t0 - load_s - check_s, 3),
                        "written": sum(a in ("written", "repaired", "changed") for a in actions),
                        "skipped": sum(a in ("kept", "adopted", "carried") for a in actions),
                        **{a: actions.count(a) for a in ("repaired", "changed", "carried", "dropped", "adopted")}}
    return stats


def _run_tasks(nusc, tasks: list[tuple], workers: int, progress: bool) -> list[tuple]:
    global _WORKER_NUSC
    _WORKER_NUSC = nusc
    results = []
    bar = tqdm(total=sum(len(t[2]) for t in tasks), desc="export", unit="seq", disable=not progress,
               file=sys.stderr)
    try:
        if workers > 1 and len(tasks) > 1:
            with mp.get_context("fork").Pool(min(workers, len(tasks))) as pool:
                for res in pool.imap_unordered(_export_scene, tasks):
                    results.extend(res)
                    bar.update(len(res))
        else:
            for task in tasks:
                res = _export_scene(task)
                results.extend(res)
                bar.update(len(res))
    finally:
        bar.close()
        _WORKER_NUSC = None
    return results


def _write_index(out: Path, version: str, interp: str, clip: str, known: dict,
                 warnings: dict[str, int] | None = None) -> dict:
    """Seqmaps and stats.json over every complete sequence under OUT (this run's and earlier ones); ``warnings``:
    the input checks' counts (in ``stats.json`` as ``input_warnings`` when there are any)."""
    (out / "seqmaps").mkdir(exist_ok=True)
    totals = {"frames": 0, "keyframes": 0, "boxes": 0, "keyframe_boxes": 0,
              "per_class": dict.fromkeys(CLASS_NAMES, 0), "tracks_per_class": dict.fromkeys(CLASS_NAMES, 0)}
    splits = {}
    for split in available_splits(version):
        seqs = sorted(p.name for p in (out / split).iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if (out / split).is_dir() else []
        if not seqs:
            continue
        splits[split] = len(seqs)
        write_text_atomic(out / "seqmaps" / f"{split}.txt", "name\n" + "".join(f"{s}\n" for s in seqs))
        for seq in seqs:
            st = known.get((split, seq)) or read_sequence_stats(out / split / seq)
            for key in ("frames", "keyframes", "boxes", "keyframe_boxes"):
                totals[key] += st[key]
            for key in ("per_class", "tracks_per_class"):
                for name in CLASS_NAMES:
                    totals[key][name] += st[key][name]
    boxes = totals["boxes"]
    stats = {"version": version, "interp": interp, "clip": clip, "splits": splits,
             "sequences": sum(splits.values()), **totals,
             "interpolated_boxes": boxes - totals["keyframe_boxes"],
             "keyframe_share": round(totals["keyframe_boxes"] / boxes, 6) if boxes else 0.0}
    if warnings:
        stats["input_warnings"] = dict(sorted(warnings.items()))
    write_json_atomic(out / "stats.json", stats, indent=2, sort_keys=True)
    return stats
