"""Rollout error: how far a lost track's predicted box drifts, TrackSSM against constant velocity.

    .venv/bin/python bench/rollout_error.py --data EXPORT --checkpoint NAME=PATH [--checkpoint NAME=PATH ...]
        [--split test] [--steps 12] [--max-runs 3000] [--seed 0] [--out outputs/bench_rollout.json]

While a track has no detection the tracker predicts it frame after frame from its own earlier predictions
(:func:`trackssm_lib.model_eval.rollout`). On runs of 6 + ``steps`` consecutive ground-truth boxes of the split
(a seeded random subset of ``--max-runs``), this prints the mean IoU and centre error (pixels) after 1, 2, 3, 6
and 12 frames (those up to ``steps``) for each checkpoint and for constant velocity, and writes every step to
``--out``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackssm_lib.fileio import write_json_atomic  # noqa: E402
from trackssm_lib.data import HISTORY  # noqa: E402
from trackssm_lib.model_eval import CONSTANT_VELOCITY, load_model, rollout_box_error, split_samples  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="prepared export")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--split", default="test")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--max-runs", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/bench_rollout.json")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be >= 1")
    models = {CONSTANT_VELOCITY: None}
    for spec in args.checkpoint:
        name, _, path = spec.partition("=")
        if not name or not path:
            p.error(f"--checkpoint wants NAME=PATH, got {spec!r}")
        models[name] = load_model(path)
    length = HISTORY + 1 + args.steps  # the 6 boxes the model reads, then the predicted ones
    runs = split_samples(args.data, args.split, length=length)
    n = len(runs["class_ids"])
    if n == 0:
        p.error(f"no runs of {length} consecutive boxes in split {args.split!r}")
    pick = np.sort(np.random.default_rng(args.seed).choice(n, min(n, args.max_runs), replace=False))
    runs = {k: (v[pick] if isinstance(v, np.ndarray) else v) for k, v in runs.items()}
    rows = rollout_box_error(runs, models, args.steps)
    shown = [s for s in (1, 2, 3, 6, 12) if s <= args.steps]
    print(f"{len(pick)} runs of {length} boxes ({args.split}); mean IoU / centre error (px) after k frames")
    print(f"{'model':<22}" + "".join(f"{f'k={s}':>16}" for s in shown))
    for name in models:
        cells = {r["step"]: r for r in rows if r["model"] == name}
        print(f"{name:<22}" + "".join(f"{cells[s]['mean_iou']:>9.3f} /{cells[s]['mean_center_error_px']:>5.1f}"
                                      for s in shown))
    write_json_atomic(Path(args.out), {"args": vars(args), "runs": len(pick), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
