"""Tracking speed on CPU: the shipped headline model beside Kalman and BoxMOT, camera frames per second.

    .venv/bin/python bench/track_speed.py [--scenes 2] [--threads 2] [--seed 0]
        [--variants kalman kalman-ego zoo boxmot:bytetrack boxmot:botsort boxmot:ocsort]

Builds a synthetic v1.0-mini export (``trackssm_lib.synth`` + ``prepare``, no images; outside the timing), then runs
every variant through :func:`trackssm_lib.tracking.run_tracking`, the path of ``python -m trackssm_lib track``:
all 6 cameras of a scene tracked together, one batched model call per timestamp, ``noisy`` detections drawn and
result files written inside the timing. Variants: ``kalman`` (constant-velocity Kalman filter, the shared
association), ``kalman-ego`` (the same with ``--ego-compensation``), ``zoo`` (the shipped headline model,
``zoo:NAME`` from ``zoo/index.json``, with its track flags; real weights, real predictions) and the BoxMOT trackers
(optional extra; no ReID, no camera-motion compensation). Goal: the model real-time for 6 cameras at 12 Hz
(>= 72 camera frames/s) on 2 cores.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackssm_lib import zoo  # noqa: E402
from trackssm_lib.tracking import run_tracking  # noqa: E402

BOXMOT_VARIANTS = ("boxmot:bytetrack", "boxmot:botsort", "boxmot:ocsort")


def build_export(tmp: Path, scenes: int, seed: int) -> Path:
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=scenes, seed=seed, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", progress=False)
    return tmp / "export"


def variant_args(name: str) -> tuple[str, dict]:
    """The ``run_tracking`` tracker and keyword arguments of one variant."""
    if name == "kalman":
        return "kalman", {}
    if name == "kalman-ego":
        return "kalman", {"ego_compensation": True}
    if name == "zoo":
        entry = zoo.headline_entry()
        return "trackssm", {"checkpoint": f"zoo:{entry['name']}", **zoo.track_options(entry["track_args"])}
    return name, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=2, help="synthetic scenes (6 cameras each)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads while tracking (run_tracking threads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["kalman", "kalman-ego", "zoo", *BOXMOT_VARIANTS],
                        choices=["kalman", "kalman-ego", "zoo", *BOXMOT_VARIANTS])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    headline = zoo.headline_entry()["name"]
    print(f"# track_speed: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, scenes {args.scenes}, noisy detections seed {args.seed}, zoo = {headline}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export = build_export(Path(tmp), args.scenes, args.seed)
        print(f"# data ready in {time.perf_counter() - t0:.1f} s")
        for name in args.variants:
            tracker, kwargs = variant_args(name)
            r = run_tracking(export, "mini_val" if (export / "mini_val").is_dir() else "mini_train", tracker=tracker,
                             detections="noisy", out=Path(tmp) / "results" / name.replace(":", "_"), seed=args.seed,
                             progress=False, threads=args.threads, **kwargs)
            print(f"{name:18s} {r['fps']:8.1f} camera frames/s  ({r['frames']} camera frames of {r['sequences']} "
                  f"sequences in {r['seconds']:.1f} s; {r['boxes']} result boxes)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
