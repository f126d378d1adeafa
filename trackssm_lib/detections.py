"""Detections for tracking: from the ground truth (``gt``, ``noisy``) or read from MOT-format files.

Every source returns ``dict[frame -> ndarray (N, 6)]`` with columns ``x1, y1, x2, y2, score, class_id`` (pixels,
float64), with one entry (possibly empty, shape (0, 6)) for every frame 1..seqLength of the sequence.

Profiles built from a prepared sequence's ``gt/gt.txt``:

``gt``
    every ground-truth box, exactly, score 1, its own class.
``noisy``
    a documented, seeded imitation of a 2D detector (all parameters in :func:`get_default_config`):

    * **misses**: each GT box is dropped with probability
      ``miss_base + miss_small * exp(-sqrt(w*h) / miss_small_scale) + miss_visibility[visibility]``
      (clipped to ``miss_max``): small and occluded boxes are missed more often (nuScenes visibility levels
      1 = 0-40 %, 2 = 40-60 %, 3 = 60-80 %, 4 = 80-100 % visible);
    * **jitter**: the centre moves by N(0, ``jitter_center`` * w) horizontally and N(0, ``jitter_center`` * h)
      vertically, width and height are multiplied by exp(N(0, ``jitter_size``)); boxes are clipped to the image;
    * **class confusion**: with probability ``confusion_prob`` a true positive takes a confusable class
      (car<->truck, bus<->truck, bicycle<->motorcycle; a truck picks car or bus at random);
    * **false positives**: Poisson(``fp_per_frame``) per frame; class drawn from the sequence's GT class
      frequencies (``fp_class_freq`` when the sequence has no boxes); height log-uniform in ``fp_height`` pixels,
      width = height x the class's typical aspect ratio (``class_aspect``), bottom edge in the lower part of the image
      (``fp_bottom`` as fractions of the height);
    * **scores**: true positives ~ Beta(``tp_score_beta``) lowered by ``tp_score_occlusion`` x (1 - visible share),
      false positives ~ Beta(``fp_score_beta``); the two distributions overlap (some FPs score above 0.6, some TPs
      below), clipped to [``score_min``, 1].

    The random stream is seeded by ``(seed, crc32(sequence name))``, so the result depends only on the seed and the
    sequence (never on the order sequences are processed in or the process).

External detections: ``<dir>/<sequence>.txt`` with rows ``frame,-1,x,y,w,h,score,class_id[,...]`` (MOT format,
top-left x/y, 1-based frames, class ids as in :data:`trackssm_lib.constants.CLASS_NAMES`); blank lines and lines
starting with ``#`` are ignored; anything malformed raises :class:`DetectionError` naming the file and line.
"""
from __future__ import annotations

import copy
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from trackssm_lib.constants import CLASS_IDS, CLASS_NAMES
from trackssm_lib.data import read_gt, read_seqinfo

DET_COLUMNS = ("x1", "y1", "x2", "y2", "score", "class_id")
PROFILES = ("gt", "noisy")

# confusable classes (symmetric pairs); a class with several partners picks one uniformly
CONFUSION_PAIRS: tuple[tuple[str, str], ...] = (("car", "truck"), ("bus", "truck"), ("bicycle", "motorcycle"))


class DetectionError(ValueError):
    """Unknown detection source, missing or malformed detection file (the message names file and line)."""


def get_default_config() -> dict[str, Any]:
    """Parameters of the ``noisy`` profile (a fresh copy; pass a partial dict to override some of them)."""
    return {
        "miss_base": 0.03,  # miss probability of a large, fully visible box
        "miss_small": 0.45,  # extra miss probability of a tiny box ...
        "miss_small_scale": 30.0,  # ... decaying with sqrt(area) in pixels on this scale
        "miss_visibility": {1: 0.30, 2: 0.12, 3: 0.04, 4: 0.0},  # extra miss probability per visibility level
        "miss_max": 0.95,
        "jitter_center": 0.04,  # centre noise std as a fraction of the box width / height
        "jitter_size": 0.06,  # log-size noise std
        "confusion_prob": 0.04,  # probability that a TP of a confusable class takes a confusable class
        "fp_per_frame": 0.6,  # mean number of false positives per frame (Poisson)
        "fp_class_freq": {"car": 0.45, "truck": 0.08, "bus": 0.03, "trailer": 0.02, "pedestrian": 0.36,
                          "motorcycle": 0.03, "bicycle": 0.03},
        "class_aspect": {"car": 1.6, "truck": 1.4, "bus": 2.0, "trailer": 2.2, "pedestrian": 0.4,
                         "motorcycle": 0.8, "bicycle": 0.8},  # typical width / height of false positives
        "fp_height": (20.0, 250.0),  # log-uniform FP height range in pixels
        "fp_bottom": (0.5, 0.9),  # FP bottom edge as fractions of the image height
        "tp_score_beta": (6.0, 1.6),  # Beta(a, b) of TP scores (mean ~0.79)
        "tp_score_occlusion": 0.25,  # TP score lowered by this x (1 - visible share)
        "fp_score_beta": (2.0, 3.5),  # Beta(a, b) of FP scores (mean ~0.36)
        "score_min": 0.01,
        "min_size": 2.0,  # boxes narrower / lower than this (pixels) after clipping are dropped
    }


_VISIBLE_SHARE = {1: 0.2, 2: 0.5, 3: 0.7, 4: 0.9}


def merge_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults updated with ``config``; unknown keys raise :class:`DetectionError`."""
    merged = get_default_config()
    if config:
        unknown = sorted(set(config) - set(merged))
        if unknown:
            raise DetectionError(f"unknown detection config keys {unknown}; known: {sorted(merged)}")
        merged.update(copy.deepcopy(config))
    return merged


def sequence_rng(seed: int, sequence: str) -> np.random.Generator:
    """The random stream of one sequence: depends on the seed and the sequence name only."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(sequence.encode("utf-8"))])


def _empty() -> np.ndarray:
    return np.zeros((0, 6), dtype=np.float64)


def _group(frames: np.ndarray, rows: np.ndarray, length: int) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {f: _empty() for f in range(1, length + 1)}
    if len(rows):
        order = np.argsort(frames, kind="stable")
        frames, rows = frames[order], rows[order]
        uniq, starts = np.unique(frames, return_index=True)
        ends = list(starts[1:]) + [len(frames)]
        for f, s, e in zip(uniq.tolist(), starts.tolist(), ends):
            out[int(f)] = rows[s:e].copy()
    return out


def _sequence_length(info: dict[str, Any], frames: np.ndarray) -> int:
    length = int(info.get("seqLength", 0) or 0)
    if len(frames):
        length = max(length, int(frames.max()))
    return length


def gt_detections(seq_dir: str | Path) -> dict[int, np.ndarray]:
    """The ``gt`` profile: every ground-truth box, score 1."""
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    gt = read_gt(seq_dir / "gt" / "gt.txt", min_columns=8)
    frames = gt[:, 0].astype(np.int64)
    rows = np.column_stack([gt[:, 2], gt[:, 3], gt[:, 2] + gt[:, 4], gt[:, 3] + gt[:, 5],
                            np.ones(len(gt)), gt[:, 7]]) if len(gt) else _empty()
    return _group(frames, rows, _sequence_length(info, frames))


def _confusion_table() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for a, b in CONFUSION_PAIRS:
        table.setdefault(CLASS_IDS[a], []).append(CLASS_IDS[b])
        table.setdefault(CLASS_IDS[b], []).append(CLASS_IDS[a])
    return table


def noisy_detections(seq_dir: str | Path, seed: int = 0, config: dict[str, Any] | None = None
                     ) -> dict[int, np.ndarray]:
    """The ``noisy`` profile (see the module docstring); deterministic per (seed, sequence name)."""
    cfg = merge_config(config)
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    width, height = float(info["imWidth"]), float(info["imHeight"])
    gt = read_gt(seq_dir / "gt" / "gt.txt", min_columns=8)
    frames_all = gt[:, 0].astype(np.int64)
    length = _sequence_length(info, frames_all)
    rng = sequence_rng(seed, str(info.get("name", seq_dir.name)))

    n = len(gt)
    x, y, w, h = (gt[:, i] if n else np.zeros(0) for i in (2, 3, 4, 5))
    cls = gt[:, 7].astype(np.int64) if n else np.zeros(0, np.int64)
    vis = (gt[:, 8].astype(np.int64) if gt.shape[1] > 8 else np.full(n, 4)) if n else np.zeros(0, np.int64)
    vis = np.clip(vis, 1, 4)

    # misses (all random draws are made for every box, in file order, so the stream is stable)
    size = np.sqrt(np.maximum(w * h, 0.0))
    vis_term = np.array([float(cfg["miss_visibility"].get(int(v), cfg["miss_visibility"].get(str(int(v)), 0.0)))
                         for v in vis]) if n else np.zeros(0)
    p_miss = np.clip(cfg["miss_base"] + cfg["miss_small"] * np.exp(-size / cfg["miss_small_scale"]) + vis_term,
                     0.0, cfg["miss_max"])
    u_miss = rng.random(n)
    # jitter
    cx = x + w / 2 + rng.normal(0.0, 1.0, n) * cfg["jitter_center"] * w
    cy = y + h / 2 + rng.normal(0.0, 1.0, n) * cfg["jitter_center"] * h
    nw = w * np.exp(rng.normal(0.0, cfg["jitter_size"], n))
    nh = h * np.exp(rng.normal(0.0, cfg["jitter_size"], n))
    # scores
    a, b = cfg["tp_score_beta"]
    visible = np.array([_VISIBLE_SHARE[int(v)] for v in vis]) if n else np.zeros(0)
    tp_score = rng.beta(a, b, n) - cfg["tp_score_occlusion"] * (1.0 - visible)
    # class confusion
    table = _confusion_table()
    u_conf = rng.random(n)
    u_pick = rng.random(n)
    new_cls = cls.copy()
    for i in np.nonzero(u_conf < cfg["confusion_prob"])[0]:
        partners = table.get(int(cls[i]))
        if partners:
            new_cls[i] = partners[min(int(u_pick[i] * len(partners)), len(partners) - 1)]

    keep = u_miss >= p_miss
    tp = np.column_stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2, tp_score, new_cls])[keep] \
        if n else _empty()
    tp_frames = frames_all[keep] if n else np.zeros(0, np.int64)

    # false positives: class frequencies of this sequence (else the configured ones)
    if n:
        counts = np.bincount(cls, minlength=len(CLASS_NAMES)).astype(np.float64)[: len(CLASS_NAMES)]
    else:
        counts = np.array([float(cfg["fp_class_freq"].get(c, 0.0)) for c in CLASS_NAMES])
    probs = counts / counts.sum() if counts.sum() > 0 else np.full(len(CLASS_NAMES), 1.0 / len(CLASS_NAMES))
    n_fp = rng.poisson(cfg["fp_per_frame"], length)
    total = int(n_fp.sum())
    fp_frames = np.repeat(np.arange(1, length + 1), n_fp)
    fp_cls = rng.choice(len(CLASS_NAMES), size=total, p=probs)
    lo, hi = cfg["fp_height"]
    fh = np.exp(rng.uniform(math.log(lo), math.log(hi), total))
    aspect = np.array([float(cfg["class_aspect"][CLASS_NAMES[c]]) for c in fp_cls]) if total else np.zeros(0)
    fw = fh * aspect * np.exp(rng.normal(0.0, 0.15, total))
    bottom = rng.uniform(*cfg["fp_bottom"], total) * height
    fcx = rng.uniform(0.0, width, total)
    fa, fb = cfg["fp_score_beta"]
    fp_score = rng.beta(fa, fb, total)
    fp = np.column_stack([fcx - fw / 2, bottom - fh, fcx + fw / 2, bottom, fp_score, fp_cls]) if total else _empty()

    rows = np.concatenate([tp, fp]) if len(fp) else tp
    frames = np.concatenate([tp_frames, fp_frames]) if len(fp) else tp_frames
    if len(rows):
        rows[:, [0, 2]] = np.clip(rows[:, [0, 2]], 0.0, width)
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0.0, height)
        rows[:, 4] = np.clip(rows[:, 4], cfg["score_min"], 1.0)
        ok = ((rows[:, 2] - rows[:, 0]) >= cfg["min_size"]) & ((rows[:, 3] - rows[:, 1]) >= cfg["min_size"])
        rows, frames = rows[ok], frames[ok]
    return _group(frames, rows, length)


def read_detection_file(path: str | Path, length: int = 0) -> dict[int, np.ndarray]:
    """Read a MOT-format detection file ``frame,-1,x,y,w,h,score,class_id[,...]``; errors name file and line."""
    path = Path(path)
    if not path.is_file():
        raise DetectionError(f"{path}: detection file not found (expected <dir>/<sequence>.txt)")
    frames: list[int] = []
    rows: list[list[float]] = []
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = [p.strip() for p in text.split(",")]
            where = f"{path}:{lineno}"
            if len(parts) < 8:
                raise DetectionError(f"{where}: expected at least 8 comma-separated columns "
                                     f"(frame,-1,x,y,w,h,score,class_id), got {len(parts)}: {text!r}")
            try:
                values = [float(p) for p in parts[:8]]
            except ValueError:
                raise DetectionError(f"{where}: non-numeric value in the first 8 columns: {text!r}") from None
            if not all(math.isfinite(v) for v in values):
                raise DetectionError(f"{where}: non-finite value: {text!r}")
            frame, _, bx, by, bw, bh, score, cls = values
            if frame != int(frame) or frame < 1:
                raise DetectionError(f"{where}: frame must be an integer >= 1, got {parts[0]!r}")
            if bw <= 0 or bh <= 0:
                raise DetectionError(f"{where}: width and height must be positive, got {bw} x {bh}")
            if cls != int(cls) or not 0 <= cls < len(CLASS_NAMES):
                raise DetectionError(f"{where}: class_id must be an integer in [0, {len(CLASS_NAMES)}) "
                                     f"({', '.join(CLASS_NAMES)}), got {parts[7]!r}")
            frames.append(int(frame))
            rows.append([bx, by, bx + bw, by + bh, score, cls])
    farr = np.asarray(frames, dtype=np.int64)
    rarr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return _group(farr, rarr, max(length, int(farr.max()) if len(farr) else 0))


def load_detections(source: str | Path, seq_dir: str | Path, seed: int = 0,
                    config: dict[str, Any] | None = None) -> dict[int, np.ndarray]:
    """Detections of one prepared sequence: ``'gt'``, ``'noisy'`` or a folder holding ``<sequence>.txt``.

    Returns ``{frame: ndarray (N, 6) x1, y1, x2, y2, score, class_id}`` for every frame 1..seqLength.
    """
    seq_dir = Path(seq_dir)
    if isinstance(source, str) and source in PROFILES:
        if source == "gt":
            if config:
                raise DetectionError("the 'gt' profile takes no config")
            return gt_detections(seq_dir)
        return noisy_detections(seq_dir, seed=seed, config=config)
    folder = Path(source)
    if not folder.is_dir():
        raise DetectionError(f"detections {str(source)!r}: not one of {PROFILES} and not a folder of "
                             f"<sequence>.txt files")
    info = read_seqinfo(seq_dir)
    name = str(info.get("name", seq_dir.name))
    return read_detection_file(folder / f"{name}.txt", length=int(info.get("seqLength", 0) or 0))
