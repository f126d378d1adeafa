"""Lost-track timeout sweep: Kalman and TrackSSM with the same association at several lost timeouts.

    .venv/bin/python bench/lost_timeout.py --data EXPORT --checkpoint PATH [--split val] [--seconds 1 2 3]
        [--detections noisy] [--seed 0] [--out outputs/bench_lost_timeout]

The association drops a lost track after ``lost_seconds`` (1 s, the official 30 frames at 30 Hz, by default). For
each timeout this tracks the split with both trackers (the same timeout for both), scores them with TrackEval
(keyframes protocol, combined class average) and splits the identity switches by cause with the same timeout
(:mod:`trackssm_lib.switch_analysis`). Prints one table and writes ``<out>/lost_timeout.json``. An exploration of
the association setting, not the benchmark's protocol: ``bench/track_quality.py`` keeps the official timeout.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackssm_lib.comparison import COMBINED, compare_trackers, switch_cause_rows  # noqa: E402
from trackssm_lib.fileio import write_json_atomic  # noqa: E402
from trackssm_lib.switch_analysis import CAUSES  # noqa: E402


def sweep_rows(data: str, split: str, checkpoint: str, detections: str, seed: int, seconds: float,
               out: Path) -> list[dict]:
    """Kalman and TrackSSM at one lost timeout: tracked and scored by ``compare_trackers`` (cached per timeout
    under ``out/<seconds>s``), switches split by cause with the same timeout."""
    trackers = [{"name": "kalman", "tracker": "kalman", "checkpoint": None},
                {"name": "trackssm", "tracker": "trackssm", "checkpoint": checkpoint}]
    run_dir = out / f"{seconds:g}s"
    rows = compare_trackers(data, split, trackers, detections=[detections], out_dir=run_dir, seed=seed,
                            lost_seconds=seconds, say=lambda m: None)
    causes = {r["tracker"]: r for r in switch_cause_rows(data, split, rows, out_dir=run_dir, lost_seconds=seconds)}
    out_rows = []
    for r in rows:
        if r["class_name"] != COMBINED["combined_class_avg"]:
            continue
        if r["status"] != "ok":
            raise SystemExit(f"{r['tracker']}: {r['reason']}")
        c = causes[r["tracker"]]
        out_rows.append({"tracker": r["tracker"], "lost_seconds": seconds, "HOTA": r["HOTA"], "IDF1": r["IDF1"],
                         "IDSW": c["IDSW"], **{k: c[k] for k in CAUSES}, "fps": r["fps"]})
    return out_rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="prepared export (python -m trackssm_lib prepare)")
    p.add_argument("--checkpoint", required=True, help="TrackSSM weights")
    p.add_argument("--split", default="val")
    p.add_argument("--seconds", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    p.add_argument("--detections", default="noisy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/bench_lost_timeout")
    args = p.parse_args(argv)
    if not all(s >= 0 for s in args.seconds):
        p.error("--seconds must be >= 0 (0: a track is dropped at its first miss)")
    out = Path(args.out)
    rows = []
    for seconds in args.seconds:
        rows.extend(sweep_rows(args.data, args.split, args.checkpoint, args.detections, args.seed, seconds, out))
    print(f"\n{'timeout':>8} {'tracker':<9} {'HOTA':>6} {'IDF1':>6} {'IDSW':>5}  " + "  ".join(CAUSES)
          + "  IDSW ratio")
    for kalman, trackssm in zip(rows[0::2], rows[1::2]):
        for r in (kalman, trackssm):
            ratio = f"{trackssm['IDSW'] / kalman['IDSW']:.3f}" if r is trackssm and kalman["IDSW"] else ""
            print(f"{r['lost_seconds']:>7g}s {r['tracker']:<9} {r['HOTA']:6.2f} {r['IDF1']:6.2f} {r['IDSW']:5d}  "
                  + "  ".join(f"{r[c]:>{len(c)}d}" for c in CAUSES) + f"  {ratio}")
    write_json_atomic(out / "lost_timeout.json", {"args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
