"""Matplotlib figures for the report notebooks, and the small table-building steps behind them.

Every ``*_figure`` function returns a :class:`matplotlib.figure.Figure` (the caller shows or closes it). The
``*_table`` / ``*_series`` helpers gather what a figure needs with the library's vectorised calls, so notebooks
only call functions and show results.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from trackssm_lib.constants import CAMERAS, CLASS_NAMES, IMAGE_HEIGHT, IMAGE_WIDTH

CLASS_COLORS: dict[str, str] = {
    "car": "#1f77b4", "truck": "#ff7f0e", "bus": "#2ca02c", "trailer": "#9467bd",
    "pedestrian": "#d62728", "motorcycle": "#e377c2", "bicycle": "#17becf",
}
MODE_COLORS: dict[str, str] = {"3d": "#1f77b4", "devkit": "#ff7f0e", "linear2d": "#2ca02c"}
GREY = 0.55


# ---------------------------------------------------------------- drawing primitives

def load_image(path: str | Path | None) -> np.ndarray | None:
    """The image at ``path`` as an array, or None when there is no such file."""
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        return None
    return plt.imread(str(path))


def draw_canvas(ax, image: np.ndarray | None, note: str | None = None, alpha: float = 1.0) -> bool:
    """The camera image (or a grey 1600x900 canvas with ``note``) in pixel coordinates; True if an image was drawn."""
    if image is not None:
        ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0), alpha=alpha)
    else:
        ax.imshow(np.full((9, 16, 3), GREY), extent=(0, IMAGE_WIDTH, IMAGE_HEIGHT, 0))
        if note:
            ax.text(IMAGE_WIDTH / 2, IMAGE_HEIGHT * 0.94, note, ha="center", va="center", fontsize=9, color="white",
                    bbox={"facecolor": "black", "alpha": 0.5, "edgecolor": "none"})
    ax.set_xlim(0, IMAGE_WIDTH)
    ax.set_ylim(IMAGE_HEIGHT, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    return image is not None


def draw_boxes(ax, boxes: np.ndarray, class_names, labels=None, linestyle: str = "-", linewidth: float = 1.2,
               fontsize: float = 6.0, color: str | None = None) -> int:
    """Draw x1, y1, x2, y2 boxes coloured by class, with optional labels (track ids); returns how many."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        if not np.all(np.isfinite([x1, y1, x2, y2])):
            continue
        c = color or CLASS_COLORS.get(str(class_names[k]), "white")
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=linewidth,
                               linestyle=linestyle))
        if labels is not None:
            ax.text(x1, y1, str(labels[k]), color="white", fontsize=fontsize, va="bottom", ha="left",
                    bbox={"facecolor": c, "alpha": 0.8, "edgecolor": "none", "pad": 0.5})
    return int(len(boxes))


def legend_outside(ax, fontsize: float = 7.0, **kwargs) -> None:
    """The axes' legend to the right of the plot, where it can never cover data (``tight_layout`` makes room)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=fontsize, **kwargs)


def class_legend(ax, classes=CLASS_NAMES, loc: str = "lower right", fontsize: float = 7.0) -> None:
    handles = [Rectangle((0, 0), 1, 1, fill=False, edgecolor=CLASS_COLORS[c], label=c) for c in classes]
    ax.legend(handles=handles, loc=loc, fontsize=fontsize, framealpha=0.7)


# ---------------------------------------------------------------- scenes, samples, cameras

def scene_of_sample(nusc, sample_token: str) -> str:
    return nusc.get("scene", nusc.get("sample", sample_token)["scene_token"])["name"]


def scene_sample_tokens(nusc, scene_name: str) -> list[str]:
    """The keyframe (sample) tokens of a scene in time order."""
    from trackssm_lib.frames import get_scene, scene_samples

    return [s["token"] for s in scene_samples(nusc, get_scene(nusc, scene_name))]


def pick_samples(nusc, scene_name: str, n: int) -> list[str]:
    """``n`` sample tokens spread evenly over the scene (never its very first, which has no sweeps before it)."""
    tokens = scene_sample_tokens(nusc, scene_name)
    pool = tokens[1:] if len(tokens) > 1 else tokens
    if n <= 0 or not pool:
        return []
    idx = np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(int))
    return [pool[i] for i in idx]


def instance_numbers(nusc, scene_name: str) -> dict[str, int]:
    """A short number per instance of the scene (1.. in order of first appearance), the same in every camera."""
    from trackssm_lib.frames import scene_annotations

    ann = scene_annotations(nusc, scene_name)
    return {tok: i + 1 for i, tok in enumerate(ann.instance_tokens)}


class SequenceCache:
    """Frames and boxes of (scene, camera, interp, clip) sequences, computed once per notebook."""

    def __init__(self, nusc):
        self.nusc = nusc
        self._seq: dict = {}
        self._ann: dict = {}

    def annotations(self, scene_name: str):
        from trackssm_lib.frames import scene_annotations

        if scene_name not in self._ann:
            self._ann[scene_name] = scene_annotations(self.nusc, scene_name)
        return self._ann[scene_name]

    def sequence(self, scene_name: str, camera: str, interp: str = "3d", clip: str = "exact"):
        from trackssm_lib.interpolation import sequence_boxes

        key = (scene_name, camera, interp, clip)
        if key not in self._seq:
            self._seq[key] = sequence_boxes(self.nusc, scene_name, camera, interp, clip,
                                            annotations=self.annotations(scene_name))
        return self._seq[key]


# ---------------------------------------------------------------- 01: projected boxes over the 6 cameras

def sample_cameras_figure(nusc, sample_token: str, clip: str = "exact", cameras=CAMERAS,
                          cache: SequenceCache | None = None) -> Figure:
    """Projected keyframe boxes (class colours, instance numbers) over the images of the sample's cameras (2x3)."""
    cache = cache or SequenceCache(nusc)
    sample = nusc.get("sample", sample_token)
    scene = scene_of_sample(nusc, sample_token)
    numbers = instance_numbers(nusc, scene)
    cameras = list(cameras)
    ncols = min(3, len(cameras))
    nrows = int(np.ceil(len(cameras) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.1 * nrows), squeeze=False)
    total = 0
    for ax, camera in zip(axes.ravel(), cameras):
        sd_token = sample["data"].get(camera)
        if sd_token is None:
            draw_canvas(ax, None, f"no {camera} data")
            continue
        frames, boxes = cache.sequence(scene, camera, "3d", clip)
        hit = np.flatnonzero(frames.tokens == sd_token)
        sel = boxes.select(boxes.frame == frames.frame[hit[0]]) if hit.size else boxes.select(boxes.frame < 0)
        sd = nusc.get("sample_data", sd_token)
        draw_canvas(ax, load_image(Path(nusc.dataroot) / sd["filename"]), "no image for this keyframe")
        draw_boxes(ax, sel.boxes, sel.class_name, [numbers[t] for t in sel.instance_token])
        total += len(sel)
        ax.set_title(f"{camera}: {len(sel)} boxes", fontsize=9)
    for ax in axes.ravel()[len(cameras):]:
        ax.axis("off")
    class_legend(axes.ravel()[0])
    fig.suptitle(f"{scene}, keyframe {sample_token[:8]} ({clip} clipping, {total} boxes)", fontsize=11)
    fig.tight_layout()
    return fig


def sweeps_figure(nusc, sample_token: str, camera: str = "CAM_FRONT", clip: str = "exact", max_sweeps: int = 5,
                  cache: SequenceCache | None = None) -> Figure:
    """Interpolated boxes of the sweeps before a keyframe, each over its own image if present, else over the
    previous keyframe's image (faded) or a grey canvas; the two keyframes bracket the row."""
    cache = cache or SequenceCache(nusc)
    scene = scene_of_sample(nusc, sample_token)
    numbers = instance_numbers(nusc, scene)
    frames, boxes = cache.sequence(scene, camera, "3d", clip)
    sd_token = nusc.get("sample", sample_token)["data"][camera]
    end = int(np.flatnonzero(frames.tokens == sd_token)[0])
    keys = np.flatnonzero(frames.is_key_frame[:end])
    start = int(keys[-1]) if keys.size else end
    between = np.arange(start + 1, end)
    if between.size > max_sweeps:
        between = between[np.unique(np.linspace(0, between.size - 1, max_sweeps).round().astype(int))]
    shown = [start, *between.tolist(), end]
    root = Path(nusc.dataroot)
    prev_image = load_image(root / frames.filenames[start])
    ncols = min(4, len(shown))
    nrows = int(np.ceil(len(shown) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 2.9 * nrows), squeeze=False)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    for ax, idx in zip(axes.ravel(), shown):
        sel = boxes.select(boxes.frame == idx + 1)
        own = load_image(root / frames.filenames[idx])
        key = bool(frames.is_key_frame[idx])
        dt_ms = (frames.timestamps[idx] - frames.timestamps[start]) / 1000.0
        if own is not None:
            draw_canvas(ax, own)
            where = "own image"
        elif prev_image is not None:
            draw_canvas(ax, prev_image, alpha=0.45)
            where = "over previous keyframe image"
        else:
            draw_canvas(ax, None, "no image for this sweep")
            where = "grey canvas"
        draw_boxes(ax, sel.boxes, sel.class_name, [numbers[t] for t in sel.instance_token],
                   linestyle="-" if key else "--", fontsize=5)
        kind = "keyframe" if key else "sweep (interpolated)"
        ax.set_title(f"frame {idx + 1}, +{dt_ms:.0f} ms\n{kind}, {len(sel)} boxes\n{where}", fontsize=7)
    fig.suptitle(f"{scene} {camera}: keyframe -> sweeps -> keyframe (dashed: interpolated boxes)", fontsize=10)
    fig.tight_layout()
    return fig


@dataclass
class KeyframeProjections:
    """Every tracked keyframe annotation projected into every camera, once per clip mode."""

    scene: np.ndarray
    camera: np.ndarray
    sample_token: np.ndarray
    filename: np.ndarray
    instance_token: np.ndarray
    class_name: np.ndarray
    boxes: dict      # clip mode -> (N, 4)
    valid: dict      # clip mode -> (N,) bool

    def __len__(self) -> int:
        return len(self.scene)


def keyframe_projections(nusc, scene_names, cameras=CAMERAS, clip_modes=("exact", "devkit"),
                         cache: SequenceCache | None = None) -> KeyframeProjections:
    """Project each tracked annotation of each keyframe into each camera with each clip mode (vectorised)."""
    from trackssm_lib.frames import camera_frames
    from trackssm_lib.interpolation import project_at_frames

    cache = cache or SequenceCache(nusc)
    cols = {k: [] for k in ("scene", "camera", "sample_token", "filename", "instance_token", "class_name")}
    boxes = {m: [] for m in clip_modes}
    valid = {m: [] for m in clip_modes}
    for scene in scene_names:
        ann = cache.annotations(scene)
        tracked = ann.class_names != ""
        for camera in cameras:
            cam = camera_frames(nusc, scene, camera, ann)
            kf = np.flatnonzero(cam.is_key_frame)
            present = (ann.ann_index[cam.sample_index[kf]] >= 0) & tracked[None, :]
            k, ii = np.nonzero(present)
            fi = kf[k]
            a = ann.ann_index[cam.sample_index[fi], ii]
            for mode in clip_modes:
                b, v = project_at_frames(cam, fi, ann.translation[a], ann.size[a], ann.rotation[a], mode)
                boxes[mode].append(b)
                valid[mode].append(v)
            cols["scene"].append(np.full(len(fi), scene, dtype=object))
            cols["camera"].append(np.full(len(fi), camera, dtype=object))
            cols["sample_token"].append(cam.sample_tokens[fi])
            cols["filename"].append(cam.filenames[fi])
            cols["instance_token"].append(ann.instance_tokens[ii])
            cols["class_name"].append(ann.class_names[ii])
    cat = lambda parts, empty: np.concatenate(parts) if parts else empty  # noqa: E731
    return KeyframeProjections(
        **{k: cat(v, np.zeros(0, dtype=object)) for k, v in cols.items()},
        boxes={m: cat(boxes[m], np.zeros((0, 4))).reshape(-1, 4) for m in clip_modes},
        valid={m: cat(valid[m], np.zeros(0, bool)).astype(bool) for m in clip_modes},
    )


def visible_share_table(proj: KeyframeProjections, clip: str = "exact", cameras=CAMERAS) -> list[dict]:
    """Per camera: tracked keyframe annotations, how many project into the image, and the share."""
    rows = []
    for camera in cameras:
        sel = proj.camera == camera
        n = int(sel.sum())
        vis = int(proj.valid[clip][sel].sum())
        rows.append({"camera": camera, "annotations": n, "visible": vis, "share": vis / n if n else 0.0})
    return rows


def visible_share_figure(rows: list[dict], title: str = "Share of 3D boxes visible per camera") -> Figure:
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    names = [r["camera"].replace("CAM_", "") for r in rows]
    shares = [r["share"] for r in rows]
    bars = ax.bar(names, shares, color="#4c72b0")
    for bar, r in zip(bars, rows):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{r['share']:.1%}\n({r['visible']})",
                ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, max([0.1, *shares]) * 1.3)
    ax.set_ylabel("visible share")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def clip_differences(proj: KeyframeProjections, a: str = "exact", b: str = "devkit", tol_px: float = 0.01) -> dict:
    """Where two clip modes disagree: boxes in one mode only, boxes whose coordinates differ by more than
    ``tol_px``, and the differing rows sorted by the largest coordinate difference (NaN-free)."""
    va, vb = proj.valid[a], proj.valid[b]
    both = va & vb
    diff = np.full(len(proj), np.nan)
    diff[both] = np.max(np.abs(proj.boxes[a][both] - proj.boxes[b][both]), axis=1)
    differ = both & (diff > tol_px)
    order = np.flatnonzero(differ)[np.argsort(-diff[differ], kind="stable")]
    return {
        "compared": int(both.sum()),
        "only_" + a: int((va & ~vb).sum()),
        "only_" + b: int((vb & ~va).sum()),
        "differing": int(differ.sum()),
        "max_diff_px": float(np.nanmax(diff[differ])) if differ.any() else 0.0,
        "diff_px": diff,
        "order": order,
    }


def clip_difference_rows(proj: KeyframeProjections, diffs: dict, a: str = "exact", b: str = "devkit",
                         top: int = 5) -> list[dict]:
    rows = []
    for i in diffs["order"][:top]:
        rows.append({"scene": proj.scene[i], "camera": proj.camera[i], "class": proj.class_name[i],
                     "instance": proj.instance_token[i][:8], a: np.round(proj.boxes[a][i], 1).tolist(),
                     b: np.round(proj.boxes[b][i], 1).tolist(), "max diff px": round(float(diffs["diff_px"][i]), 2)})
    return rows


def clip_difference_figure(proj: KeyframeProjections, diffs: dict, dataroot: str | Path, a: str = "exact",
                           b: str = "devkit") -> Figure:
    """Left: distribution of the coordinate differences; right: the box with the largest one, both modes drawn."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1.6]})
    d = diffs["diff_px"][diffs["order"]]
    if d.size:
        ax0.hist(np.log10(d), bins=30, color="#4c72b0")
        ax0.set_xlabel("log10 max |coordinate difference| (px)")
    else:
        ax0.text(0.5, 0.5, "no differing boxes", ha="center", va="center", transform=ax0.transAxes)
    ax0.set_ylabel("boxes")
    ax0.set_title(f"{a} vs {b}: {diffs['differing']} of {diffs['compared']} boxes differ; "
                  f"{diffs['only_' + a]} only {a}, {diffs['only_' + b]} only {b}", fontsize=8)
    if diffs["order"].size:
        i = diffs["order"][0]
        draw_canvas(ax1, load_image(Path(dataroot) / proj.filename[i]), "no image for this keyframe")
        draw_boxes(ax1, proj.boxes[a][i:i + 1], [proj.class_name[i]], [a], linestyle="-", linewidth=2,
                   color="#2ca02c")
        draw_boxes(ax1, proj.boxes[b][i:i + 1], [proj.class_name[i]], [b], linestyle="--", linewidth=2,
                   color="#d62728")
        ax1.set_title(f"{proj.scene[i]} {proj.camera[i]} {proj.class_name[i]}: largest difference "
                      f"{diffs['diff_px'][i]:.1f} px (solid {a}, dashed {b})", fontsize=8)
    else:
        draw_canvas(ax1, None, "exact and devkit agree on every box")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- 02: tracks across modes, hold-out errors

def pick_track(boxes, min_keyframes: int = 3, min_boxes: int = 12) -> str | None:
    """An instance worth plotting: annotated on at least ``min_keyframes`` keyframes, at least ``min_boxes`` boxes,
    never wider than half the image, with the largest range of its box centre in the image."""
    if len(boxes) == 0:
        return None
    tokens = np.unique(boxes.instance_token.astype(str))
    best, best_score = None, -1.0
    for tok in tokens:
        sel = boxes.instance_token == tok
        b = boxes.boxes[sel]
        if sel.sum() < min_boxes or boxes.is_keyframe[sel].sum() < min_keyframes:
            continue
        if np.max(b[:, 2] - b[:, 0]) > IMAGE_WIDTH / 2:
            continue
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        score = float(np.ptp(cx) + np.ptp(cy))
        if score > best_score:
            best, best_score = str(tok), score
    if best is None:
        tokens, counts = np.unique(boxes.instance_token.astype(str), return_counts=True)
        best = str(tokens[np.argmax(counts)])
    return best


def track_series(cache: SequenceCache, scene: str, camera: str, instance_token: str,
                 modes=("3d", "devkit", "linear2d"), clip: str = "exact") -> dict:
    """Per mode: time (s from the first frame), cx, cy, w, h and keyframe flags of one instance's boxes."""
    out = {}
    t_ref = None
    for mode in modes:
        frames, boxes = cache.sequence(scene, camera, mode, clip)
        if t_ref is None:
            t_ref = int(frames.timestamps[0]) if len(frames) else 0
        sel = boxes.select(boxes.instance_token == instance_token)
        order = np.argsort(sel.frame, kind="stable")
        b = sel.boxes[order]
        t = (frames.timestamps[sel.frame[order] - 1] - t_ref) / 1e6
        out[mode] = {"t": t, "cx": (b[:, 0] + b[:, 2]) / 2, "cy": (b[:, 1] + b[:, 3]) / 2,
                     "w": b[:, 2] - b[:, 0], "h": b[:, 3] - b[:, 1], "is_keyframe": sel.is_keyframe[order],
                     "frame": sel.frame[order]}
    return out


def track_modes_figure(series: dict, title: str = "") -> Figure:
    """cx, cy, w, h of one track over time for each interpolation mode; keyframe boxes marked."""
    fig, axes = plt.subplots(4, 1, figsize=(9, 7.5), sharex=True)
    styles = {"3d": "-", "devkit": "--", "linear2d": ":"}
    for k, coord in enumerate(("cx", "cy", "w", "h")):
        ax = axes[k]
        for mode, s in series.items():
            if len(s["t"]) == 0:
                continue
            c = MODE_COLORS.get(mode, None)
            ax.plot(s["t"], s[coord], styles.get(mode, "-"), color=c, lw=1.2, marker=".", ms=3,
                    label=f"{mode} ({len(s['t'])} boxes)")
            key = s["is_keyframe"]
            ax.plot(s["t"][key], s[coord][key], "o", mfc="none", mec="black", ms=6,
                    label="keyframe (annotated)" if mode == next(iter(series)) else None)
        ax.set_ylabel(f"{coord} (px)")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, 0.965))
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10, y=0.998)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def iou_error_bars(rows: list[dict], series_key: str, series: list[str], colors: list, iou_title: str):
    """Per-class grouped bars of ``mean_iou`` and ``mean_center_error_px``, one bar per series (mode, model...).

    Returns (figure, left axes, right axes); classes without boxes are left out, ``all`` comes last."""
    classes = [c for c in (*CLASS_NAMES, "all") if any(r["class_name"] == c and r["n"] > 0 for r in rows)]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 3.6))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(classes))
    for j, (name, color) in enumerate(zip(series, colors)):
        vals = {r["class_name"]: r for r in rows if r[series_key] == name}
        offset = (j - (len(series) - 1) / 2) * width
        ax0.bar(x + offset, [vals[c]["mean_iou"] if c in vals else np.nan for c in classes], width, label=name,
                color=color)
        ax1.bar(x + offset, [vals[c]["mean_center_error_px"] if c in vals else np.nan for c in classes], width,
                label=name, color=color)
    labels = [f"{c}\n(n={next((r['n'] for r in rows if r['class_name'] == c), 0)})" for c in classes]
    for ax, name in ((ax0, iou_title), (ax1, "mean centre error (px)")):
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    ax0.set_ylim(0, 1)
    return fig, ax0, ax1


def holdout_figure(rows: list[dict], modes=("3d", "devkit", "linear2d")) -> Figure:
    """Mean IoU and mean centre error of the hold-out test, per class, one bar per mode."""
    fig, ax0, ax1 = iou_error_bars(rows, "mode", list(modes), [MODE_COLORS.get(m) for m in modes],
                                   "mean IoU with the held-out keyframe box")
    handles, names = ax0.get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(names), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def stats_figure(stats: dict) -> Figure:
    """Boxes per class of an export, split into keyframe (annotated) and interpolated shares."""
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    per_class = stats.get("per_class", {})
    names = [c for c in CLASS_NAMES if per_class.get(c, 0) > 0] or list(CLASS_NAMES)
    ax.bar(names, [per_class.get(c, 0) for c in names], color=[CLASS_COLORS[c] for c in names])
    ax.set_ylabel("boxes")
    ax.set_yscale("log")
    ax.set_title(f"{stats.get('boxes', 0)} boxes in {stats.get('sequences', 0)} sequences, "
                 f"{stats.get('frames', 0)} frames; keyframe share {stats.get('keyframe_share', 0):.1%}", fontsize=9)
    fig.tight_layout()
    return fig

