"""Export speed: this project's vectorised export vs a straightforward devkit-based reference.

Part 1 (same data, same results): for every camera frame of the chosen scenes the reference calls
``NuScenes.get_boxes`` and projects box by box as the devkit's export script does; the project exports the
same scenes (``--interp devkit --clip devkit``, files written). The boxes are checked to agree (0.01 px, after
the 3-decimal text rounding) and the speed ratio is printed.
Part 2 (scale, ``--full``): a v1.0-trainval-sized synthetic dataset (850 scenes, no images) is generated, its
tables loaded (timed separately), checked (``trackssm_lib.validation``, inside the export time and also reported
alone) and every scene x 6 cameras exported at 12 Hz with ``--workers``.

    .venv/bin/python bench/prep_speed.py                      # part 1 on the real scene (+ synthetic mini)
    .venv/bin/python bench/prep_speed.py --full --workers 2   # part 1 and part 2
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trackssm_lib.constants import CAMERAS  # noqa: E402
from trackssm_lib.devkit_reference import devkit_frame_boxes  # noqa: E402
from trackssm_lib.export import prepare  # noqa: E402
from trackssm_lib.frames import camera_frames  # noqa: E402
from trackssm_lib.nuscenes_db import load_nuscenes  # noqa: E402
from trackssm_lib.splits import scene_split_map  # noqa: E402

REAL_SCENE = ROOT.parent / "shared" / "data" / "nuscenes-mini-scene-0916"


def reference_boxes(nusc, scenes):
    """{(scene, camera, frame, instance): box} computed frame by frame with the devkit."""
    out = {}
    for scene in scenes:
        for camera in CAMERAS:
            cam = camera_frames(nusc, scene, camera)
            for f, token in enumerate(cam.tokens):
                for ann_token, box in devkit_frame_boxes(nusc, token).items():
                    if box is None or not (box[2] > box[0] and box[3] > box[1]):
                        continue
                    ann = nusc.get("sample_annotation", ann_token)
                    out[(scene, camera, f + 1, ann["instance_token"], ann["category_name"])] = box
    return out


def exported_boxes(out_dir: Path, nusc, scenes):
    split_of = scene_split_map(nusc)
    boxes = {}
    for scene in scenes:
        for camera in CAMERAS:
            seq = out_dir / split_of[scene] / f"{scene}_{camera}"
            ids = np.genfromtxt(seq / "gt" / "ids.csv", delimiter=",", names=True, dtype=None, encoding="utf-8",
                                ndmin=1)
            token_of = {int(r["track_id"]): r["instance_token"] for r in ids}
            for row in np.loadtxt(seq / "gt" / "gt.txt", delimiter=",", ndmin=2):
                x, y, w, h = row[2:6]
                boxes[(scene, camera, int(row[0]), token_of[int(row[1])])] = (x, y, x + w, y + h)
    return boxes


def compare(dataroot: Path, version: str, scenes: list[str] | None, label: str) -> dict:
    nusc = load_nuscenes(dataroot, version)
    scenes = scenes or [s["name"] for s in nusc.scene]
    t0 = time.perf_counter()
    ref = reference_boxes(nusc, scenes)
    t_ref = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = prepare(dataroot, version, Path(tmp) / "out", scenes=scenes, interp="devkit", clip="devkit",
                        progress=False, nusc=nusc)
        t_ours = time.perf_counter() - t0
        ours = exported_boxes(Path(tmp) / "out", nusc, scenes)
    from trackssm_lib.constants import tracking_class
    ref_tracked = {k[:4]: v for k, v in ref.items() if tracking_class(k[4])}
    assert set(ref_tracked) == set(ours), f"{label}: different sets of boxes"
    diff = max(float(np.max(np.abs(np.subtract(ours[k], v)))) for k, v in ref_tracked.items())
    assert diff < 0.01, f"{label}: max difference {diff} px"
    frames = stats["frames"]
    result = {"data": label, "scenes": len(scenes), "frames": frames, "boxes": stats["boxes"],
              "reference_s": round(t_ref, 2), "export_s": round(t_ours, 3), "speedup": round(t_ref / t_ours, 1),
              "max_diff_px": diff, "reference_frames_per_s": round(frames / t_ref, 1),
              "export_frames_per_s": round(frames / t_ours, 1)}
    print(json.dumps(result))
    return result


def full_scale(workers: int, keep: Path | None) -> dict:
    from trackssm_lib.synth import generate_dataset

    tmp = tempfile.TemporaryDirectory() if keep is None else None
    base = Path(tmp.name) if tmp else keep
    t0 = time.perf_counter()
    root = generate_dataset(base / "nusc", version="v1.0-trainval", seed=0, images=False, progress=True)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    nusc = load_nuscenes(root, "v1.0-trainval")
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = prepare(root, "v1.0-trainval", base / "out", workers=workers, progress=True, nusc=nusc)
    t_export = time.perf_counter() - t0
    result = {"data": "synthetic v1.0-trainval (850 scenes, no images)", "generate_s": round(t_gen, 1),
              "load_tables_s": round(t_load, 1), "check_tables_s": stats["_timing"]["check_tables_s"],
              "export_s": round(t_export, 1), "workers": workers,
              "sequences": stats["sequences"], "frames": stats["frames"], "boxes": stats["boxes"],
              "frames_per_s": round(stats["frames"] / t_export, 1), "splits": stats["splits"]}
    print(json.dumps(result))
    if tmp:
        tmp.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also run the 850-scene scale test")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--synth-scenes", type=int, default=2, help="synthetic mini scenes for part 1")
    parser.add_argument("--keep", type=Path, default=None, help="keep the full-scale data in this folder")
    args = parser.parse_args()
    if REAL_SCENE.exists():
        compare(REAL_SCENE, "v1.0-mini", None, "real nuScenes scene-0916")
    else:
        print(f"real scene not found at {REAL_SCENE}; skipping it", file=sys.stderr)
    if args.synth_scenes:
        from trackssm_lib.synth import generate_dataset

        with tempfile.TemporaryDirectory() as tmp:
            root = generate_dataset(Path(tmp) / "nusc", "v1.0-mini", n_scenes=args.synth_scenes, seed=0,
                                    images=False, progress=False)
            compare(root, "v1.0-mini", None, f"synthetic v1.0-mini ({args.synth_scenes} scenes)")
    if args.full:
        full_scale(args.workers, args.keep)


if __name__ == "__main__":
    main()
