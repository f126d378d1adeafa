"""Why confirmed tracks become lost, per tracker (Kalman, TrackSSM checkpoints, the oracle), same association.

    .venv/bin/python bench/lost_tracks.py --data EXPORT [--split val] [--checkpoint NAME=PATH ...] [--oracle]
        [--detections noisy] [--seed 0] [--out outputs/bench_quality/lost_tracks_val]

Runs each tracker on every sequence of the split as ``python -m trackssm_lib track`` does and labels every
tracked -> lost transition of a confirmed track by what the object's detection was in that frame
(:mod:`trackssm_lib.lost_tracks`). Prints one table (losses, and in brackets how many the same track got back
later) and writes ``<out>/lost_tracks.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackssm_lib.fileio import write_json_atomic  # noqa: E402
from trackssm_lib.lost_tracks import LOSS_CAUSES, lost_track_causes  # noqa: E402


def format_table(results: dict[str, dict]) -> str:
    """Markdown: one row per cause, one column per tracker, ``lost (re-acquired)``; then the totals."""
    names = list(results)
    lines = ["| a tracked track becomes lost because | " + " | ".join(names) + " |",
             "| --- |" + " ---: |" * len(names)]
    for cause in LOSS_CAUSES:
        cells = [f"{r['lost'][cause]:,} ({r['reacquired'][cause]:,})" for r in results.values()]
        lines.append(f"| {cause} | " + " | ".join(cells) + " |")
    lines.append("| motion-caused (the last four) | " + " | ".join(f"{r['motion_caused']:,}" for r in results.values())
                 + " |")
    lines.append("| all | " + " | ".join(f"{r['total']:,}" for r in results.values()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="prepared export (python -m trackssm_lib prepare)")
    p.add_argument("--split", default="val")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH", help="TrackSSM weights")
    p.add_argument("--oracle", action="store_true", help="add the ground-truth predictions (the bound)")
    p.add_argument("--detections", default="noisy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/bench_quality/lost_tracks")
    args = p.parse_args(argv)

    runs: list[tuple[str, str, str | None]] = [("kalman", "kalman", None)]
    for spec in args.checkpoint:
        name, _, path = spec.partition("=")
        if not name or not path:
            p.error(f"--checkpoint wants NAME=PATH, got {spec!r}")
        runs.append((name, "trackssm", path))
    if args.oracle:
        runs.append(("oracle", "oracle", None))
    results = {name: lost_track_causes(args.data, args.split, tracker, detections=args.detections,
                                       checkpoint=ckpt, seed=args.seed)
               for name, tracker, ckpt in runs}
    print(format_table(results))
    write_json_atomic(Path(args.out) / "lost_tracks.json", {"args": vars(args), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
