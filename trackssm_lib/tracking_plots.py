"""Figures of the evaluation chapter: HOTA per class, identity switches, tracker speed, one sequence's tracks.

Identity switches in :func:`identity_switches` are found with TrackEval CLEAR's matching
(:func:`trackssm_lib.switch_analysis.clear_switch_events`), per class, on every frame of the files given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from trackssm_lib.boxes import iou_matrix, xywh_to_xyxy
from trackssm_lib.constants import CLASS_NAMES
from trackssm_lib.plots import legend_outside

TRACKER_COLORS = ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _ok(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("status", "ok") == "ok"]


def _trackers(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["tracker"] for r in rows))


def _unavailable_note(ax, rows: Iterable[Mapping[str, Any]]) -> None:
    missing = sorted({r["tracker"] for r in rows if r.get("status", "ok") != "ok"})
    if missing:
        ax.text(0.99, 0.98, "not available: " + ", ".join(missing), transform=ax.transAxes, ha="right", va="top",
                fontsize=7, color="0.4")


def hota_per_class_figure(rows: Sequence[Mapping[str, Any]], detections: str = "gt", metric: str = "HOTA") -> Figure:
    """Grouped bars: one group per class (plus the class average), one bar per tracker."""
    sel = [r for r in _ok(rows) if r["detections"] == detections]
    trackers = _trackers(sel)
    classes = [c for c in CLASS_NAMES if any(r["class_name"] == c for r in sel)]
    classes += [c for c in dict.fromkeys(r["class_name"] for r in sel) if c not in classes and "class avg" in c]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(classes) + 2), 3.6))
    width = 0.8 / max(len(trackers), 1)
    x = np.arange(len(classes))
    for i, name in enumerate(trackers):
        vals = {r["class_name"]: r[metric] for r in sel if r["tracker"] == name}
        heights = [vals.get(c) if vals.get(c) is not None else np.nan for c in classes]
        ax.bar(x + (i - (len(trackers) - 1) / 2) * width, heights, width, label=name,
               color=TRACKER_COLORS[i % len(TRACKER_COLORS)])
    ax.set_xticks(x, classes, rotation=20, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{metric} per class, {detections} detections", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if trackers:
        legend_outside(ax)
    _unavailable_note(ax, [r for r in rows if r["detections"] == detections])
    fig.tight_layout()
    return fig


def _per_tracker_bars(rows, value: str, ylabel: str, title: str, class_name: str | None,
                      log: bool = False) -> Figure:
    sources = list(dict.fromkeys(r["detections"] for r in rows))
    sel = [r for r in _ok(rows) if class_name is None or r["class_name"] == class_name]
    trackers = _trackers(rows)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(trackers) + 2), 3.4))
    width = 0.8 / max(len(sources), 1)
    x = np.arange(len(trackers))
    for i, det in enumerate(sources):
        vals = {r["tracker"]: r[value] for r in sel if r["detections"] == det}
        heights = np.array([vals.get(t) if vals.get(t) is not None else np.nan for t in trackers], dtype=float)
        bars = ax.bar(x + (i - (len(sources) - 1) / 2) * width, heights, width, label=f"{det} detections")
        for b, h in zip(bars, heights):
            if np.isfinite(h):
                ax.annotate(f"{h:.0f}", (b.get_x() + b.get_width() / 2, h), ha="center", va="bottom", fontsize=7)
    for j, t in enumerate(trackers):
        if not any(r["tracker"] == t for r in sel):
            ax.annotate("not available", (x[j], 0), ha="center", va="bottom", fontsize=7, rotation=90, color="0.4")
    ax.set_xticks(x, trackers, rotation=15, fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    legend_outside(ax)
    fig.tight_layout()
    return fig


def idsw_figure(rows: Sequence[Mapping[str, Any]], class_name: str = "all (class avg)") -> Figure:
    """Identity switches per tracker (summed over the classes), one bar per detection source."""
    return _per_tracker_bars(rows, "IDSW", "identity switches", "Identity switches per tracker", class_name)


def speed_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Tracking speed per tracker: camera frames per second (all cameras of a scene tracked together)."""
    return _per_tracker_bars(rows, "fps", "camera frames / s (log)", "Tracker speed", "all (class avg)", log=True)


# ---------------------------------------------------------------------------------------------- one sequence
def read_mot(path: str | Path) -> np.ndarray:
    """A MOT file (results or ``gt/gt.txt``) as (R, >=8) floats; an empty or missing file gives (0, 8)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return np.zeros((0, 8))
    arr = np.loadtxt(path, delimiter=",", ndmin=2)
    return arr if arr.size else np.zeros((0, 8))


def _rows(a) -> np.ndarray:
    a = np.asarray(a, float)
    return np.zeros((0, 6)) if a.size == 0 else np.atleast_2d(a)


def identity_switches(gt: np.ndarray, results: np.ndarray, iou_threshold: float = 0.5,
                      frames: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Identity switches of the GT tracks: ``[{frame, gt_id, from_id, to_id, x, y, w, h}]`` sorted by frame.

    ``gt`` and ``results``: MOT rows (frame, id, x, y, w, h, ...); GT rows with a zero consider flag (column 7) are
    left out, and when both carry a class (column 8) each class is matched on its own. On every frame (only
    ``frames`` when given) TrackEval CLEAR's matching is run (IoU >= ``iou_threshold``, the previous frame's matches
    kept first); a GT track matched to another result id than at its last match has a switch there. On the
    evaluated frames of a sequence this gives TrackEval's IDSW.
    """
    from trackssm_lib.switch_analysis import clear_switch_events

    gt, results = _rows(gt), _rows(results)
    if gt.shape[1] >= 7:
        gt = gt[gt[:, 6] != 0]
    if frames is not None:
        keep = np.asarray(sorted(set(int(f) for f in frames)))
        gt, results = gt[np.isin(gt[:, 0], keep)], results[np.isin(results[:, 0], keep)]
    by_class = gt.shape[1] >= 8 and results.shape[1] >= 8
    switches = []
    for cls in (np.unique(gt[:, 7]) if by_class else [None]):
        g = gt if cls is None else gt[gt[:, 7] == cls]
        r = results if cls is None else results[results[:, 7] == cls]
        steps = np.unique(g[:, 0]).astype(int)
        g_ids, g_inv = np.unique(g[:, 1], return_inverse=True)
        r_ids, r_inv = np.unique(r[:, 1], return_inverse=True)
        data: dict[str, Any] = {"num_gt_ids": len(g_ids), "gt_ids": [], "tracker_ids": [], "similarity_scores": []}
        for f in steps:
            gi, ri = g[:, 0] == f, r[:, 0] == f
            data["gt_ids"].append(g_inv.reshape(-1)[gi])
            data["tracker_ids"].append(r_inv.reshape(-1)[ri])
            data["similarity_scores"].append(iou_matrix(xywh_to_xyxy(g[gi, 2:6]), xywh_to_xyxy(r[ri, 2:6])))
        for t, gid, before, now, _ in clear_switch_events(data, iou_threshold):
            box = g[(g[:, 0] == steps[t]) & (g_inv.reshape(-1) == gid)][0]
            switches.append({"frame": int(steps[t]), "gt_id": int(g_ids[gid]), "from_id": int(r_ids[before]),
                             "to_id": int(r_ids[now]), "x": float(box[2]), "y": float(box[3]),
                             "w": float(box[4]), "h": float(box[5])})
    return sorted(switches, key=lambda s: (s["frame"], s["gt_id"]))


def pick_sequence(results_dir: str | Path, gt_dir: str | Path) -> str | None:
    """The sequence with the most result boxes (None when there are no results)."""
    best, n_best = None, 0
    for f in sorted(Path(results_dir).glob("*.txt")):
        if not (Path(gt_dir) / f.stem / "gt" / "gt.txt").is_file():
            continue
        n = sum(1 for _ in open(f))
        if n > n_best:
            best, n_best = f.stem, n
    return best


def tracks_over_time_figure(gt_file: str | Path, result_file: str | Path, title: str = "",
                            iou_threshold: float = 0.5, max_tracks: int | None = None) -> tuple[Figure, list[dict]]:
    """Result tracks of one sequence as box x-centre against frame, coloured by track id, with the GT tracks
    in grey underneath and the identity switches marked (red crosses). Returns (figure, switches)."""
    gt, res = read_mot(gt_file), read_mot(result_file)
    switches = identity_switches(gt, res, iou_threshold)
    fig, ax = plt.subplots(figsize=(8.0, 4.0))
    for gid in np.unique(gt[:, 1]):
        g = gt[gt[:, 1] == gid]
        ax.plot(g[:, 0], g[:, 2] + g[:, 4] / 2, color="0.85", lw=3, zorder=1)
    ids = np.unique(res[:, 1]) if len(res) else np.zeros(0)
    if max_tracks is not None:
        ids = ids[:max_tracks]
    cmap = plt.get_cmap("tab20")
    for k, tid in enumerate(ids):
        t = res[res[:, 1] == tid]
        t = t[np.argsort(t[:, 0])]
        ax.plot(t[:, 0], t[:, 2] + t[:, 4] / 2, ".", ms=2, color=cmap(k % 20), zorder=2)
    if switches:
        ax.plot([s["frame"] for s in switches], [s["x"] + s["w"] / 2 for s in switches], "x", color="red", ms=8,
                mew=2, zorder=3, label=f"identity switch ({len(switches)})")
        legend_outside(ax, fontsize=8)
    ax.set_xlabel("frame")
    ax.set_ylabel("box centre x (px)")
    ax.set_title(title or f"{Path(result_file).stem}: {len(ids)} tracks (colour = id), GT in grey", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig, switches
