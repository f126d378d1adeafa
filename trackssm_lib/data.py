"""Training data for TrackSSM: window batches over prepared (MOT-layout) sequences and official per-track samples.

Two views of the same ground truth are provided.

* **Windows** (:class:`WindowDataset`, :func:`collate_windows`): one item is a sequence and a start frame ``s``;
  it holds the ``T = sequence_length`` history frames ``s .. s+T-1`` of up to ``num_queries`` tracks
  (``condition (T, N, 4)``, ``padding_mask (T, N)`` True where the track has no box in that frame) and the boxes of
  the same tracks in the *current* frame ``s+T`` (``cur_bbox (N, 4)``, ``cur_mask (N,)``). The current frame is
  the prediction target and is never part of ``condition`` (no label leakage). Frames before 1 are padding, so the
  first targets of a sequence (frame 7 on) are used too. A window exists only if at least one track yields an
  official sample for its current frame (see below); consecutive windows are ``window_stride`` frames apart.
* **Per-track samples** (official TrackSSM input): 7 consecutive boxes ``b0..b6`` of one track give
  ``condition (5, 8) = [b1..b5 | b1-b0 .. b5-b4]`` and ``target = b6``. :func:`windows_to_samples` makes them
  from a window batch (``b6`` = ``cur_bbox``, ``b0..b5`` = the last 6 history frames);
  :func:`extract_track_samples` makes every sample of whole sequences at once (vectorised).

Gaps: a sample needs the track in **all 7 consecutive frames** ``f-6 .. f``. A track missing from any of them gives
no sample for target frame ``f``; nothing is interpolated across a gap (the export already interpolated between
nuScenes keyframes where the object was annotated; a gap that remains is real absence). Samples resume once the
track has again been present for 7 consecutive frames.

Boxes are normalised ``(cx, cy, w, h)``: pixel centre and size divided by the image width / height of
``seqinfo.ini``. Class ids are the export's (0-based: car=0 truck=1 bus=2 trailer=3 pedestrian=4 motorcycle=5
bicycle=6); MOTChallenge pedestrians get :data:`PEDESTRIAN_CLASS_ID` = 4.

Augmentation (training datasets only; validation and test items are never changed): a horizontal flip with
probability ``flip_prob`` (``cx -> 1 - cx`` for every box of the item, target included, hence the x deltas change
sign) and a uniform jitter of up to ``jitter`` (5 %) of the box size applied to the *input* boxes only
(``cx += u*w``, ``cy += u*h``, ``w *= 1+u``, ``h *= 1+u``, ``u ~ U(-jitter, jitter)`` drawn per coordinate), then
clipped to [0, 1]; deltas are computed from the jittered boxes. With ``short_history_prob`` p > 0 (a project option,
default 0) each track of a training window is, with probability p, given as a young track: its condition keeps only
its newest ``m ~ U{1..4}`` rows, padded at the end with copies of the newest row as the tracker pads a track with
fewer than 5 rows (a track born after a sequence's first frame has m + 1 detections then: its birth detection gives
no row of its own, only the displacement of the first row). The random numbers come from a generator seeded by
``(seed, epoch, item)``, so an item is augmented identically whatever the worker, process or resume point.

Cameras: each window item carries its sequence's camera as a model camera slot (:func:`camera_slot`: the index in
:data:`~trackssm_lib.constants.CAMERAS` + 1, 0 when the name has no camera suffix); a flipped item gets the mirrored
camera (:data:`MIRRORED_SLOT`: front-left <-> front-right, back-left <-> back-right), since a mirrored world seen
from the left cameras looks as the real one seen from the right. Only camera-aware models
(``TrackSSM(num_cameras=6)``, the training option ``camera_aware``) use it.

Ego motion: sequences loaded with ``ego=True`` carry the camera's twist into every frame (from ``camera.csv``,
:func:`trackssm_lib.ego_motion.camera_twists`); window items then hold ``ego (T + 1, 6)`` for their frames (zeros
before frame 2), mirrored with the item (:func:`~trackssm_lib.ego_motion.mirror_twists`). Only ego-aware models
(the training option ``ego_aware``) use it.
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from trackssm_lib.constants import CAMERAS
from trackssm_lib.ego_motion import EGO_DIMS, CameraPoseError, frame_twists, mirror_twists

PEDESTRIAN_CLASS_ID = 4
HISTORY = 5  # boxes per official condition
SAMPLE_FRAMES = HISTORY + 2  # b0..b6
FULL_HISTORY = 1 << 30  # ``rows_kept`` of a sample whose whole history is used
GT_COLUMNS = 10  # frame,track_id,x,y,w,h,conf,class_id,visibility,-1


class DatasetError(ValueError):
    """Malformed prepared data (the message names the file)."""


def camera_of(sequence: str) -> str | None:
    """``scene-0061_CAM_FRONT`` -> ``CAM_FRONT`` (None for a name without a camera suffix)."""
    for cam in CAMERAS:
        if str(sequence).endswith("_" + cam):
            return cam
    return None


def slot_of_camera(camera: str | None) -> int:
    """The model camera slot of ``camera``: its index in ``CAMERAS`` + 1; 0 for None (unknown)."""
    return 0 if camera is None else CAMERAS.index(camera) + 1


def camera_slot(sequence: str) -> int:
    """``scene-0061_CAM_FRONT`` -> the model camera slot of its camera; 0: unknown."""
    return slot_of_camera(camera_of(sequence))


def _mirrored_slots() -> tuple[int, ...]:
    swap = {"LEFT": "RIGHT", "RIGHT": "LEFT"}
    mirrored = ["_".join(swap.get(part, part) for part in cam.split("_")) for cam in CAMERAS]
    return (0,) + tuple(CAMERAS.index(m) + 1 for m in mirrored)


MIRRORED_SLOT: tuple[int, ...] = _mirrored_slots()  # camera slot -> the slot of its mirror image (0 stays 0)


# ------------------------------------------------------------------------------------------------ reading files
def read_seqinfo(seq_dir: Path) -> dict[str, Any]:
    """``seqinfo.ini`` -> dict with name, imWidth, imHeight, seqLength, frameRate (ints where numeric)."""
    path = Path(seq_dir) / "seqinfo.ini"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing seqinfo.ini (is {seq_dir} a prepared sequence?)")
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keep the MOT key case
    try:
        parser.read(path)
        section = parser["Sequence"]
        info: dict[str, Any] = dict(section)
        for key in ("imWidth", "imHeight", "seqLength", "frameRate"):
            if key in info:
                info[key] = int(float(info[key]))
        width, height = info["imWidth"], info["imHeight"]
    except (KeyError, ValueError, configparser.Error) as exc:
        raise DatasetError(f"{path}: bad seqinfo.ini ({type(exc).__name__}: {exc})") from exc
    if width <= 0 or height <= 0:
        raise DatasetError(f"{path}: image size must be positive, got {width}x{height}")
    return info


def read_gt(path: Path, min_columns: int = 8) -> np.ndarray:
    """A MOT ``gt.txt`` as a float64 array (rows, columns); an empty file gives (0, min_columns)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing ground-truth file")
    if path.stat().st_size == 0:
        return np.zeros((0, min_columns))
    try:
        arr = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
    except Exception as exc:  # pandas raises several parser error types
        raise DatasetError(f"{path}: not a MOT ground-truth file ({type(exc).__name__}: {exc})") from exc
    if arr.ndim != 2 or arr.shape[1] < min_columns or not np.isfinite(arr[:, :6]).all():
        raise DatasetError(f"{path}: expected >= {min_columns} numeric columns per row, got shape {arr.shape}")
    return arr


def xywh_to_cxcywh(xywh: np.ndarray, width: float, height: float) -> np.ndarray:
    """Pixel top-left boxes -> normalised (cx, cy, w, h) float32."""
    out = np.empty((len(xywh), 4), dtype=np.float32)
    out[:, 0] = (xywh[:, 0] + xywh[:, 2] / 2) / width
    out[:, 1] = (xywh[:, 1] + xywh[:, 3] / 2) / height
    out[:, 2] = xywh[:, 2] / width
    out[:, 3] = xywh[:, 3] / height
    return out


@dataclass
class SequenceData:
    """One prepared sequence; rows sorted by (frame, track id)."""

    name: str
    width: int
    height: int
    length: int  # seqLength (last frame number)
    frames: np.ndarray  # (R,) int64, 1-based
    track_ids: np.ndarray  # (R,) int64
    boxes: np.ndarray  # (R, 4) float32 normalised cx cy w h
    class_ids: np.ndarray  # (R,) int64
    ego: np.ndarray | None = None  # (length + 1, 6) float32: row f = the camera's twist into frame f; row 0 unused

    def __post_init__(self) -> None:
        order = np.lexsort((self.track_ids, self.frames))
        self.frames, self.track_ids = self.frames[order], self.track_ids[order]
        self.boxes, self.class_ids = self.boxes[order], self.class_ids[order]
        dup = (np.diff(self.frames) == 0) & (np.diff(self.track_ids) == 0)
        if dup.any():
            i = int(np.nonzero(dup)[0][0])
            raise DatasetError(f"sequence {self.name}: track {self.track_ids[i]} has two boxes in frame "
                               f"{self.frames[i]}")


def load_sequence(seq_dir: str | Path, classes: Iterable[int] | None = None, ego: bool = False) -> SequenceData:
    """Read one exported sequence (``gt/gt.txt`` + ``seqinfo.ini``); optionally keep only ``classes``.

    ``ego``: also read the camera's motion into every frame from ``camera.csv`` (:func:`sequence_twists`)."""
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    gt = read_gt(seq_dir / "gt" / "gt.txt", min_columns=8)
    if classes is not None:
        gt = gt[np.isin(gt[:, 7].astype(np.int64), np.asarray(list(classes), dtype=np.int64))]
    length = int(info.get("seqLength", int(gt[:, 0].max()) if len(gt) else 0))
    return SequenceData(
        name=seq_dir.name, width=info["imWidth"], height=info["imHeight"], length=length,
        frames=gt[:, 0].astype(np.int64), track_ids=gt[:, 1].astype(np.int64),
        boxes=xywh_to_cxcywh(gt[:, 2:6], info["imWidth"], info["imHeight"]), class_ids=gt[:, 7].astype(np.int64),
        ego=sequence_twists(seq_dir, length) if ego else None)


def sequence_twists(seq_dir: str | Path, length: int) -> np.ndarray:
    """``(length + 1, 6)`` float32: row f is the camera's twist into frame f (:func:`trackssm_lib.ego_motion.
    camera_twists`; row 0 and frame 1 are zero); a missing or malformed ``camera.csv`` raises DatasetError."""
    try:
        twists = frame_twists(seq_dir, length)
    except CameraPoseError as exc:
        raise DatasetError(f"the ego motion (ego_aware models) needs the camera poses: {exc}") from exc
    out = np.zeros((length + 1, EGO_DIMS), dtype=np.float32)
    out[1:] = twists
    return out


def split_sequence_dirs(data_root: str | Path, split: str) -> list[Path]:
    """Sequence folders of ``split``: the names of ``seqmaps/<split>.txt`` (else every folder of ``<split>/``)."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"data folder {data_root} does not exist (run `python -m trackssm_lib prepare` "
                                f"first, or pass --data)")
    split_dir = data_root / split
    seqmap = data_root / "seqmaps" / f"{split}.txt"
    if seqmap.is_file():
        names = [ln.strip() for ln in seqmap.read_text().splitlines()[1:] if ln.strip()]
        dirs = [split_dir / n for n in names]
        missing = [str(d) for d in dirs if not d.is_dir()]
        if missing:
            raise FileNotFoundError(f"{seqmap} lists sequences that are not in {split_dir}: {missing[:5]}")
        return dirs
    if split_dir.is_dir():
        return sorted(d for d in split_dir.iterdir() if (d / "seqinfo.ini").is_file())
    available = sorted(p.stem for p in (data_root / "seqmaps").glob("*.txt"))
    raise FileNotFoundError(f"split {split!r} not found in {data_root} (no {seqmap} and no {split_dir}); "
                            f"available splits: {available or 'none'}")


def default_splits(data_root: str | Path) -> tuple[str, str]:
    """(train, val) split names of a prepared export: ``train``/``val`` (trainval) or ``mini_train``/``mini_val``."""
    data_root = Path(data_root)
    for train, val in (("train", "val"), ("mini_train", "mini_val")):
        if (data_root / "seqmaps" / f"{train}.txt").is_file() or (data_root / train).is_dir():
            return train, val
    if not data_root.is_dir():
        raise FileNotFoundError(f"data folder {data_root} does not exist (run `python -m trackssm_lib prepare` "
                                f"first, or pass --data)")
    raise FileNotFoundError(f"{data_root} has neither a train nor a mini_train split (is it a prepared export?)")


def load_split(data_root: str | Path, split: str, classes: Iterable[int] | None = None,
               ego: bool = False) -> list[SequenceData]:
    return [load_sequence(d, classes, ego) for d in split_sequence_dirs(data_root, split)]


# ------------------------------------------------------------------------------------------ per-track samples
def sample_runs(group: np.ndarray, frames: np.ndarray, length: int = SAMPLE_FRAMES) -> np.ndarray:
    """Start rows ``i`` of ``length``-frame runs (default 7) in rows sorted by (group, frame), unique (group, frame).

    Rows ``i .. i+6`` form a 7-frame run when they belong to one group and ``frames[i+6] - frames[i] == 6``: with
    unique, increasing frames inside a group that means all 7 consecutive frames are present (no gap).
    """
    n = len(frames)
    if n < length:
        return np.zeros(0, dtype=np.int64)
    k = length - 1
    ok = (group[k:] == group[:-k]) & (frames[k:] - frames[:-k] == k)
    return np.nonzero(ok)[0]


def extract_track_samples(frames: np.ndarray, track_ids: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray,
                          seq_index: np.ndarray | None = None, length: int = SAMPLE_FRAMES,
                          return_frames: bool = False) -> tuple[np.ndarray, ...]:
    """Every official sample of many tracks at once: ``(boxes7 (S, 7, 4) float32, class_ids (S,) int64)``.

    Rows may come in any order and from many sequences (``seq_index`` tells them apart; track ids need only be
    unique within a sequence). ``boxes7[:, :6]`` are b0..b5, ``boxes7[:, 6]`` the target; the class id is the
    target row's. Runs across a gap are not formed (see the module docstring). Fully vectorised. ``length`` > 7
    gives longer runs ``(S, length, 4)`` (rollout evaluation), the class id of the last row. ``return_frames``: also
    the frame number of every box, ``(S, length)`` int64, as a third result.
    """
    frames = np.asarray(frames, dtype=np.int64)
    track_ids = np.asarray(track_ids, dtype=np.int64)
    seq_index = np.zeros_like(frames) if seq_index is None else np.asarray(seq_index, dtype=np.int64)
    order = np.lexsort((frames, track_ids, seq_index))
    f, t, s = frames[order], track_ids[order], seq_index[order]
    if len(f) > 1:
        dup = (s[1:] == s[:-1]) & (t[1:] == t[:-1]) & (f[1:] == f[:-1])
        if dup.any():
            i = int(np.nonzero(dup)[0][0])
            raise DatasetError(f"track {t[i]} (sequence #{s[i]}) has two boxes in frame {f[i]}")
    # one group key per (sequence, track)
    new_group = np.ones(len(f), dtype=bool)
    if len(f) > 1:
        new_group[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    group = np.cumsum(new_group)
    starts = sample_runs(group, f, length)
    rows = order[starts[:, None] + np.arange(length)]
    boxes7 = np.asarray(boxes, dtype=np.float32)[rows].reshape(len(starts), length, 4)
    cls = np.asarray(class_ids, dtype=np.int64)[rows[:, -1]] if len(starts) else np.zeros(0, dtype=np.int64)
    if return_frames:
        return boxes7, cls, frames[rows].reshape(len(starts), length)
    return boxes7, cls


def sequences_to_samples(sequences: Sequence[SequenceData], classes: Iterable[int] | None = None,
                         length: int = SAMPLE_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """:func:`extract_track_samples` over a list of sequences (optionally only some classes; runs of ``length``)."""
    if not sequences:
        return np.zeros((0, length, 4), dtype=np.float32), np.zeros(0, dtype=np.int64)
    frames = np.concatenate([s.frames for s in sequences])
    tids = np.concatenate([s.track_ids for s in sequences])
    boxes = np.concatenate([s.boxes for s in sequences])
    cls = np.concatenate([s.class_ids for s in sequences])
    seq = np.repeat(np.arange(len(sequences)), [len(s.frames) for s in sequences])
    if classes is not None:
        keep = np.isin(cls, np.asarray(list(classes), dtype=np.int64))
        frames, tids, boxes, cls, seq = frames[keep], tids[keep], boxes[keep], cls[keep], seq[keep]
    return extract_track_samples(frames, tids, boxes, cls, seq, length=length)


def history_condition(history: np.ndarray | torch.Tensor) -> Any:
    """(S, H+1, 4) boxes b0..bH -> ``condition (S, H, 8)`` = [b1..bH | b1-b0..bH-bH-1] (numpy or torch); H = 5 is
    the official input ([b1..b5 | b1-b0..b5-b4])."""
    deltas = history[:, 1:] - history[:, :-1]
    if isinstance(history, torch.Tensor):
        return torch.cat([history[:, 1:], deltas], dim=-1)
    return np.concatenate([history[:, 1:], deltas], axis=-1)


def build_condition(boxes7: np.ndarray | torch.Tensor) -> tuple[Any, Any]:
    """(S, 7, 4) boxes b0..b6 -> official ``condition (S, 5, 8)`` (:func:`history_condition` of b0..b5) and
    ``target (S, 4)`` = b6. Works on numpy arrays and torch tensors alike.
    """
    return history_condition(boxes7[:, :-1]), boxes7[:, -1]


# ----------------------------------------------------------------------------------------------- augmentation
def item_rng(seed: int, epoch: int, item: int | Sequence[int]) -> np.random.Generator:
    """The generator of one item (or of one batch of sample indices): seeded by (seed, epoch, item)."""
    key = [int(seed), int(epoch)] + ([int(item)] if np.isscalar(item) else [int(i) for i in item])
    return np.random.default_rng(key)


def augment_boxes(boxes: np.ndarray, is_input: np.ndarray, rng: np.random.Generator, flip: bool | np.ndarray,
                  jitter: float) -> np.ndarray:
    """Flip (``cx -> 1 - cx`` where ``flip``) and jitter the boxes ``(..., 4)`` marked ``is_input``; clip to [0, 1].

    ``flip`` is a bool or an array broadcastable to ``boxes.shape[:-1]``. Returns a new float32 array.
    """
    out = np.array(boxes, dtype=np.float32, copy=True)
    flip = np.broadcast_to(np.asarray(flip, dtype=bool), out.shape[:-1])
    out[..., 0] = np.where(flip, 1.0 - out[..., 0], out[..., 0])
    if jitter > 0:
        u = rng.uniform(-jitter, jitter, size=out.shape).astype(np.float32)
        u = np.where(np.asarray(is_input, dtype=bool)[..., None], u, 0.0).astype(np.float32)
        w, h = out[..., 2].copy(), out[..., 3].copy()
        out[..., 0] += u[..., 0] * w
        out[..., 1] += u[..., 1] * h
        out[..., 2] *= 1.0 + u[..., 2]
        out[..., 3] *= 1.0 + u[..., 3]
    np.clip(out, 0.0, 1.0, out=out)
    return out


# ---------------------------------------------------------------------------------------------- window dataset
class WindowDataset(Dataset):
    """Windows of ``sequence_length`` history frames + the current (target) frame; see the module docstring.

    ``train=True`` enables augmentation (flip, jitter); call :meth:`set_epoch` each epoch for fresh draws.
    A window exists where a track has an official sample (7 consecutive boxes) ending at its current frame.
    """

    def __init__(self, sequences: Sequence[SequenceData], sequence_length: int = 20, num_queries: int = 300,
                 window_stride: int = 1, train: bool = False, flip_prob: float = 0.5, jitter: float = 0.05,
                 seed: int = 0, short_history_prob: float = 0.0) -> None:
        if not 0.0 <= short_history_prob <= 1.0:
            raise ValueError(f"short_history_prob must lie in [0, 1], got {short_history_prob}")
        self.short_history_prob = float(short_history_prob)
        if sequence_length < SAMPLE_FRAMES - 1:
            raise ValueError(f"sequence_length must be >= {SAMPLE_FRAMES - 1} (the official history needs 6 "
                             f"boxes), got {sequence_length}")
        if num_queries < 1 or window_stride < 1:
            raise ValueError("num_queries and window_stride must be >= 1")
        self.sequences = list(sequences)
        self.T, self.num_queries, self.stride = int(sequence_length), int(num_queries), int(window_stride)
        self.train, self.flip_prob, self.jitter, self.seed = bool(train), float(flip_prob), float(jitter), int(seed)
        self.epoch = 0
        seq_idx, starts = [], []
        for i, seq in enumerate(self.sequences):
            order = np.lexsort((seq.frames, seq.track_ids))
            runs = sample_runs(seq.track_ids[order], seq.frames[order], SAMPLE_FRAMES)
            cur = np.unique(seq.frames[order][runs + SAMPLE_FRAMES - 1])  # frames with >= 1 target
            cur = cur[(cur - SAMPLE_FRAMES) % self.stride == 0]
            seq_idx.append(np.full(len(cur), i, dtype=np.int64))
            starts.append(cur - self.T)
        self.seq_index = np.concatenate(seq_idx) if seq_idx else np.zeros(0, dtype=np.int64)
        self.start_frames = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.seq_index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        seq = self.sequences[int(self.seq_index[index])]
        start = int(self.start_frames[index])
        cur = start + self.T
        lo, hi = np.searchsorted(seq.frames, [start, cur + 1])
        fr, tid = seq.frames[lo:hi], seq.track_ids[lo:hi]
        boxes, cls = seq.boxes[lo:hi], seq.class_ids[lo:hi]
        hist = fr < cur
        ids, counts = np.unique(tid[hist], return_counts=True)
        at_cur = np.isin(ids, tid[~hist])
        if len(ids) > self.num_queries:  # keep tracks with a target first, then the longest histories, then ids
            keep = np.lexsort((ids, -counts, ~at_cur))[: self.num_queries]
            ids = np.sort(ids[keep])
        n = len(ids)
        col = np.searchsorted(ids, tid)
        col_ok = (col < n) & (ids[np.minimum(col, max(n - 1, 0))] == tid) if n else np.zeros(len(tid), bool)
        condition = np.zeros((self.T, n, 4), dtype=np.float32)
        padding = np.ones((self.T, n), dtype=bool)
        cls_hist = np.full((self.T, n), -1, dtype=np.int64)
        rows = hist & col_ok
        t = fr[rows] - start
        condition[t, col[rows]] = boxes[rows]
        padding[t, col[rows]] = False
        cls_hist[t, col[rows]] = cls[rows]
        cur_bbox = np.zeros((n, 4), dtype=np.float32)
        cur_mask = np.ones(n, dtype=bool)
        cur_cls = np.full(n, -1, dtype=np.int64)
        rows = ~hist & col_ok
        cur_bbox[col[rows]] = boxes[rows]
        cur_mask[col[rows]] = False
        cur_cls[col[rows]] = cls[rows]
        ego = np.zeros((self.T + 1, EGO_DIMS), dtype=np.float32)  # camera twists into frames start..cur
        if seq.ego is not None:
            frames = np.arange(start, cur + 1)
            ok = (frames >= 1) & (frames < len(seq.ego))
            ego[ok] = seq.ego[frames[ok]]
        rows_kept = np.full(n, FULL_HISTORY, dtype=np.int64)  # young-track cut per track (none by default)
        slot = camera_slot(seq.name)
        if self.train:
            rng = item_rng(self.seed, self.epoch, index)
            flip = bool(rng.random() < self.flip_prob)
            slot = MIRRORED_SLOT[slot] if flip else slot
            ego = mirror_twists(ego) if flip else ego
            condition = augment_boxes(condition, ~padding, rng, flip, self.jitter)
            if self.short_history_prob > 0:  # drawn last: runs without it keep their random numbers
                young = rng.random(n) < self.short_history_prob
                rows_kept[young] = rng.integers(1, HISTORY, n)[young]
            cur_bbox = augment_boxes(cur_bbox, np.zeros(n, dtype=bool), rng, flip, 0.0)
            condition[padding] = 0.0
            cur_bbox[cur_mask] = 0.0
        return {"condition": condition, "cur_bbox": cur_bbox, "padding_mask": padding, "cur_mask": cur_mask,
                "rows_kept": rows_kept,
                "track_ids": np.where(padding, -1, ids[None, :]), "class_ids": cls_hist, "cur_class_ids": cur_cls,
                "camera_slot": slot, "ego": ego, "seq_name": seq.name, "start_frame": start}


def collate_windows(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack window items, padding the track axis to the batch's largest N (at least 1)."""
    T = items[0]["condition"].shape[0]
    n = max(1, max(it["condition"].shape[1] for it in items))
    B = len(items)
    out = {
        "condition": torch.zeros(B, T, n, 4), "cur_bbox": torch.zeros(B, n, 4),
        "padding_mask": torch.ones(B, T, n, dtype=torch.bool), "cur_mask": torch.ones(B, n, dtype=torch.bool),
        "track_ids": torch.full((B, T, n), -1, dtype=torch.long), "class_ids": torch.full((B, T, n), -1,
                                                                                         dtype=torch.long),
        "cur_class_ids": torch.full((B, n), -1, dtype=torch.long),
        "rows_kept": torch.full((B, n), FULL_HISTORY, dtype=torch.long),
        "ego": torch.zeros(B, T + 1, EGO_DIMS),
    }
    for b, it in enumerate(items):
        k = it["condition"].shape[1]
        out["condition"][b, :, :k] = torch.from_numpy(it["condition"])
        out["cur_bbox"][b, :k] = torch.from_numpy(it["cur_bbox"])
        out["padding_mask"][b, :, :k] = torch.from_numpy(it["padding_mask"])
        out["cur_mask"][b, :k] = torch.from_numpy(it["cur_mask"])
        out["track_ids"][b, :, :k] = torch.from_numpy(it["track_ids"])
        out["class_ids"][b, :, :k] = torch.from_numpy(it["class_ids"])
        out["cur_class_ids"][b, :k] = torch.from_numpy(it["cur_class_ids"])
        out["rows_kept"][b, :k] = torch.from_numpy(it["rows_kept"])
        if "ego" in it:
            out["ego"][b] = torch.from_numpy(np.asarray(it["ego"], dtype=np.float32))
    out["seq_names"] = [it["seq_name"] for it in items]
    out["camera_slots"] = torch.tensor([it.get("camera_slot", 0) for it in items], dtype=torch.long)
    out["start_frames"] = torch.tensor([it["start_frame"] for it in items], dtype=torch.long)
    return out


def young_track_condition(condition: torch.Tensor, rows_kept: torch.Tensor) -> torch.Tensor:
    """``condition (S, H, 8)`` as the tracker builds it for young tracks of only ``rows_kept (S,)`` rows (values
    >= H leave a sample unchanged): the newest ``m`` rows, then copies of the newest.

    A track born after its sequence's first frame is unconfirmed until its second detection, which overwrites the
    birth row with ``(box, box - birth box)``; so ``m`` rows hold ``m + 1`` detections and every kept row has its
    real displacement (only tracks born in the first frame, confirmed at once, start from a zero displacement)."""
    H = condition.shape[1]
    m = rows_kept.clamp(min=1, max=H).to(torch.long)
    young = m < H
    if not bool(young.any()):
        return condition
    idx = (torch.arange(H, device=condition.device)[None, :] + (H - m)[:, None]).clamp(max=H - 1)
    return torch.gather(condition, 1, idx[..., None].expand(-1, -1, condition.shape[2])).clone()


def windows_to_samples(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Official per-track samples of a window batch: one per track present in the current frame and in each of
    the last 6 history frames (b0..b5 = history frames T-6..T-1, target b6 = ``cur_bbox``; no gap allowed).

    Returns ``condition (S, 5, 8)``, ``target (S, 4)``, ``class_ids (S,)`` (the current frame's class),
    ``camera_slots (S,)`` (the window's camera), ``ego (S, 6)`` (the camera's twist into the current frame; zeros
    for windows without camera poses), ``batch_index``/``track_index (S,)`` (position in the batch).
    """
    cond, pad = batch["condition"], batch["padding_mask"]
    k = HISTORY + 1
    if k > cond.shape[1]:
        raise ValueError(f"a sample needs {k} history frames, the windows have {cond.shape[1]}")
    valid = ~pad[:, -k:].any(dim=1) & ~batch["cur_mask"]  # (B, N)
    b_idx, n_idx = torch.nonzero(valid, as_tuple=True)
    hist = cond[b_idx, :, n_idx][:, -k:]  # (S, 6, 4)
    boxes7 = torch.cat([hist, batch["cur_bbox"][b_idx, n_idx][:, None]], dim=1)
    condition, target = build_condition(boxes7)
    if "rows_kept" in batch:
        condition = young_track_condition(condition, batch["rows_kept"][b_idx, n_idx])
    return {"condition": condition, "target": target, "class_ids": batch["cur_class_ids"][b_idx, n_idx],
            "camera_slots": _sample_slots(batch, b_idx), "ego": _sample_ego(batch, b_idx),
            "batch_index": b_idx, "track_index": n_idx}


def _sample_ego(batch: dict[str, Any], b_idx: torch.Tensor) -> torch.Tensor:
    """The camera twist into the current (target) frame of each sample's window, (S, 6) (zeros for batches without
    them)."""
    ego = batch.get("ego")
    if ego is None:
        return torch.zeros(len(b_idx), EGO_DIMS)
    return ego[b_idx][:, -1]


def _sample_slots(batch: dict[str, Any], b_idx: torch.Tensor) -> torch.Tensor:
    """Camera slot of each sample (its window's; 0 for batches without cameras)."""
    slots = batch.get("camera_slots")
    return torch.zeros_like(b_idx) if slots is None else slots[b_idx]


# ---------------------------------------------------------------------------------------------- sample dataset
class SampleDataset(Dataset):
    """Per-track samples (``boxes7 (S, 7, 4)``, ``class_ids (S,)``), fetched a batch of indices at a time.

    Use with ``DataLoader(ds, sampler=BatchSampler(base_sampler, batch_size, False), batch_size=None)``:
    ``ds[list_of_indices]`` returns a ready batch (vectorised; augmentation in training only, seeded by the
    epoch and the indices).
    """

    def __init__(self, boxes7: np.ndarray, class_ids: np.ndarray, train: bool = False, flip_prob: float = 0.5,
                 jitter: float = 0.05, seed: int = 0) -> None:
        boxes7 = np.asarray(boxes7, dtype=np.float32)
        if boxes7.ndim != 3 or boxes7.shape[1:] != (SAMPLE_FRAMES, 4):
            raise ValueError(f"boxes7 must be (S, {SAMPLE_FRAMES}, 4), got {boxes7.shape}")
        self.boxes7, self.class_ids = boxes7, np.asarray(class_ids, dtype=np.int64)
        self.train, self.flip_prob, self.jitter, self.seed = bool(train), float(flip_prob), float(jitter), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.boxes7)

    def __getitem__(self, indices: Any) -> dict[str, torch.Tensor]:
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        boxes7 = self.boxes7[idx]
        if self.train:
            rng = item_rng(self.seed, self.epoch, idx)
            flip = rng.random(len(idx)) < self.flip_prob
            is_input = np.zeros(boxes7.shape[:2], dtype=bool)
            is_input[:, :-1] = True
            boxes7 = augment_boxes(boxes7, is_input, rng, flip[:, None], self.jitter)
        condition, target = build_condition(torch.from_numpy(boxes7))
        return {"condition": condition, "target": target,
                "class_ids": torch.from_numpy(self.class_ids[idx])}


# -------------------------------------------------------------------------------------------- MOTChallenge GT
def load_mot_sequence(seq_dir: str | Path, frame_step: int = 1) -> SequenceData:
    """One MOTChallenge (MOT17 layout) sequence: pedestrians only (consider flag col 7 == 1, class col 8 == 1).

    ``frame_step > 1`` keeps every ``frame_step``-th frame (1, 1+step, ...) renumbered 1, 2, ... (e.g. 2 or 3 to
    bring 30 fps closer to nuScenes' 12 Hz). Class ids become :data:`PEDESTRIAN_CLASS_ID`.
    """
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    gt = read_gt(seq_dir / "gt" / "gt.txt", min_columns=8)
    gt = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    frames = gt[:, 0].astype(np.int64)
    if frame_step > 1:
        keep = (frames - 1) % frame_step == 0
        gt, frames = gt[keep], (frames[keep] - 1) // frame_step + 1
    return SequenceData(name=seq_dir.name, width=info["imWidth"], height=info["imHeight"],
                        length=int(info.get("seqLength", 0)) // max(frame_step, 1), frames=frames,
                        track_ids=gt[:, 1].astype(np.int64),
                        boxes=xywh_to_cxcywh(gt[:, 2:6], info["imWidth"], info["imHeight"]),
                        class_ids=np.full(len(gt), PEDESTRIAN_CLASS_ID, dtype=np.int64))


def mot_sequence_dirs(root: str | Path) -> list[Path]:
    """Sequence folders under ``root`` (those with ``gt/gt.txt`` and ``seqinfo.ini``), also one level down
    (e.g. ``MOT17/train/...``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MOTChallenge folder {root} does not exist")
    dirs = sorted(p.parent.parent for p in root.glob("*/gt/gt.txt")) or \
        sorted(p.parent.parent for p in root.glob("*/*/gt/gt.txt"))
    dirs = [d for d in dirs if (d / "seqinfo.ini").is_file()]
    if not dirs:
        raise FileNotFoundError(f"{root}: no MOTChallenge sequences (<seq>/gt/gt.txt + <seq>/seqinfo.ini)")
    return dirs


def load_mot_samples(root: str | Path, frame_step: int = 1,
                     sequences: Iterable[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Official per-track samples of MOTChallenge pedestrian GT: ``(boxes7, class_ids (all 4), names)``."""
    dirs = mot_sequence_dirs(root)
    if sequences is not None:
        wanted = set(sequences)
        dirs = [d for d in dirs if d.name in wanted]
    seqs = [load_mot_sequence(d, frame_step) for d in dirs]
    boxes7, cls = sequences_to_samples(seqs)
    return boxes7, cls, [s.name for s in seqs]


__all__ = [
    "DatasetError", "PEDESTRIAN_CLASS_ID", "SequenceData", "SampleDataset", "WindowDataset", "build_condition",
    "collate_windows", "default_splits", "extract_track_samples", "history_condition", "load_mot_samples",
    "load_mot_sequence", "load_sequence", "load_split", "read_gt", "read_seqinfo", "sequences_to_samples",
    "split_sequence_dirs", "windows_to_samples", "young_track_condition",
]
