"""How much does knowing the camera (and its motion) tell about where a box goes next, before the track has a velocity
of its own?

    .venv/bin/python bench/camera_prior.py --data EXPORT [--fit-split train] [--split val] [--steps 1 3 6]
        [--out outputs/bench_camera_prior.json]

A track seen for one frame has no velocity to extrapolate. This benchmark predicts the box ``k`` frames later from
that one box with a lookup table: the median size-relative displacement ``(dcx / w, dcy / h, dlog w, dlog h)`` of
the ``--fit-split`` ground truth in the same cell of (image column in 8 bins, image row in 4 bins, log2 of the box
width in pixels, class), without and with the camera as a further key, and with the camera and the ego speed (the
camera's translation over the first predicted frame, ``camera.csv``, in 6 bins) (cells unseen in the fit split
predict no motion). Reported on ``--split``: mean IoU with the true box and the share below IoU 0.5 (where the
official second association would no longer take a low-score detection), next to "the box stays where it is"
(what a new Kalman track or a TrackSSM history of one row starts from). The gaps between the tables are what the
project options ``camera_aware`` and ``ego_aware`` let a model learn.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackssm_lib.fileio import write_json_atomic  # noqa: E402
from trackssm_lib.model_eval import box_errors, split_samples  # noqa: E402

DISPLACEMENT = ("dx", "dy", "dlogw", "dlogh")


EGO_SPEED_BINS = (0.05, 0.25, 0.45, 0.65, 0.85)  # metres per frame (about 0.6 to 10 m/s at 12 Hz)


def cells(runs: dict, with_camera: bool, with_ego: bool = False) -> pd.DataFrame:
    """The lookup keys of each run's first box."""
    first = runs["boxes7"][:, 0].astype(np.float64)
    keys = {"col": np.clip((first[:, 0] * 8).astype(int), 0, 7), "row": np.clip((first[:, 1] * 4).astype(int), 0, 3),
            "size": np.clip(np.log2(np.maximum(first[:, 2] * runs["width"], 1.0)).astype(int), 0, 12),
            "cls": runs["class_ids"]}
    if with_camera:
        keys["camera"] = runs["camera_slots"]
    if with_ego:
        keys["ego"] = np.digitize(np.linalg.norm(runs["ego"][:, 1, :3], axis=1), EGO_SPEED_BINS)
    return pd.DataFrame(keys)


def displacement(runs: dict) -> np.ndarray:
    """Size-relative change from the first box to the last, (S, 4)."""
    a, b = runs["boxes7"][:, 0].astype(np.float64), runs["boxes7"][:, -1].astype(np.float64)
    return np.column_stack([(b[:, 0] - a[:, 0]) / a[:, 2], (b[:, 1] - a[:, 1]) / a[:, 3],
                            np.log(b[:, 2] / a[:, 2]), np.log(b[:, 3] / a[:, 3])])


def apply(first: np.ndarray, d: np.ndarray) -> np.ndarray:
    return np.column_stack([first[:, 0] + d[:, 0] * first[:, 2], first[:, 1] + d[:, 1] * first[:, 3],
                            first[:, 2] * np.exp(d[:, 2]), first[:, 3] * np.exp(d[:, 3])])


def cell_prior(fit: dict, runs: dict, with_camera: bool, with_ego: bool = False) -> np.ndarray:
    """Median displacement of each run's cell in ``fit`` (zero for unseen cells) -> (S, 4)."""
    table = cells(fit, with_camera, with_ego).assign(**dict(zip(DISPLACEMENT, displacement(fit).T)))
    keys = list(table.columns[: -len(DISPLACEMENT)])
    medians = table.groupby(keys)[list(DISPLACEMENT)].median()
    looked_up = cells(runs, with_camera, with_ego).merge(medians, how="left", left_on=keys, right_index=True)
    return looked_up[list(DISPLACEMENT)].fillna(0.0).to_numpy()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="prepared export")
    p.add_argument("--fit-split", default="train")
    p.add_argument("--split", default="val")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 3, 6])
    p.add_argument("--out", default="outputs/bench_camera_prior.json")
    args = p.parse_args(argv)
    rows = []
    print(f"next box from one box, {args.split} (lookup fitted on {args.fit_split}): mean IoU (share below 0.5)")
    for k in args.steps:
        if k < 1:
            p.error("--steps must be >= 1")
        fit, runs = split_samples(args.data, args.fit_split, length=k + 1), split_samples(args.data, args.split,
                                                                                          length=k + 1)
        first, target = runs["boxes7"][:, 0].astype(np.float64), runs["boxes7"][:, -1].astype(np.float64)
        preds = {"stays": first, "cell (no camera)": apply(first, cell_prior(fit, runs, False)),
                 "cell + camera": apply(first, cell_prior(fit, runs, True)),
                 "cell + camera + ego speed": apply(first, cell_prior(fit, runs, True, True))}
        cells_text = []
        for name, pred in preds.items():
            iou, _ = box_errors(pred, target, runs["width"], runs["height"])
            rows.append({"steps": k, "predictor": name, "n": len(iou), "mean_iou": float(iou.mean()),
                         "share_below_0.5": float((iou < 0.5).mean())})
            cells_text.append(f"{name} {iou.mean():.3f} ({(iou < 0.5).mean():.3f})")
        print(f"k={k} ({len(first):,} runs): " + ", ".join(cells_text))
    write_json_atomic(Path(args.out), {"args": vars(args), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
