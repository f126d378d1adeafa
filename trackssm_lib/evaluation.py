"""Tracking evaluation through TrackEval: one path for the project's 7 classes and one for MOTChallenge benchmarks.

Every metric comes from TrackEval (HOTA, CLEAR, Identity, Count); this module only reads and checks the files,
builds the per-timestep data TrackEval's dataset interface expects, and writes the results.

* 7-class path (``evaluate(gt_dir, results_dir, out_dir, protocol=...)``): ``gt_dir`` is a folder of exported
  sequences (``<seq>/gt/gt.txt``, ``<seq>/seqinfo.ini``, ``<seq>/frames.csv``), ``results_dir`` a folder of
  ``<seq>.txt`` files (``frame,track_id,x,y,w,h,score,class_id,-1,-1``; a track id keeps one class within its
  file). :class:`NuScenesMot2DBox` evaluates each of the 7 classes separately (GT and tracker rows filtered by
  class, no distractor classes) and TrackEval combines the classes (class-averaged and detection-weighted rows).
  Protocols: ``keyframes`` (the headline: only the annotated 2 Hz keyframes, ``is_key_frame == 1`` in
  ``frames.csv``, are timesteps; GT and tracker rows on other frames are dropped) and ``all`` (every 12 Hz frame
  with the interpolated GT).
* Benchmark path (``benchmark='MOT15'|'MOT16'|'MOT17'|'MOT20'``): TrackEval's own ``MotChallenge2DBox`` with that
  benchmark's rules (distractor classes and preprocessing from MOT16 on; none for MOT15), pedestrian only.

In both, a GT sequence without a result file is evaluated as an empty prediction set (all misses), listed in
``missing_sequences`` and in a warning on stderr; it is never skipped. A results folder without a file for any
GT sequence is an error (nothing would be scored). Bad input raises :class:`EvaluationError` (a ``ValueError``;
exit code 2 on the command line) naming the file and line.
"""
from __future__ import annotations

import argparse
import configparser
import contextlib
import io
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from trackssm_lib.constants import CLASS_IDS, CLASS_NAMES
from trackssm_lib.fileio import write_json_atomic, write_text_atomic

PROTOCOLS: tuple[str, ...] = ("keyframes", "all")
BENCHMARKS: tuple[str, ...] = ("MOT15", "MOT16", "MOT17", "MOT20")
IOU_THRESHOLD = 0.5  # CLEAR and Identity matching threshold (TrackEval's default; HOTA uses its alphas 0.05..0.95)

# Fields reported as percentages (TrackEval floats x 100; HOTA's per-alpha arrays averaged over the alphas first).
_HOTA_ARRAY_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "OWTA")
_HOTA_FLOAT_FIELDS = ("HOTA(0)", "LocA(0)", "HOTALocA(0)")
_CLEAR_PERCENT = ("MOTA", "MOTP", "MODA", "CLR_Re", "CLR_Pr", "MTR", "PTR", "MLR", "sMOTA", "CLR_F1", "MOTAL")
_CLEAR_INT = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames")
_ID_PERCENT = ("IDF1", "IDR", "IDP")
_ID_INT = ("IDTP", "IDFN", "IDFP")
_COUNT_INT = ("Dets", "GT_Dets", "IDs", "GT_IDs")
SUMMARY_COLUMNS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN", "GT_Dets", "Dets", "GT_IDs")


class EvaluationError(ValueError):
    """Bad evaluation input (malformed or inconsistent files); the message names the file and line."""


# ----------------------------------------------------------------------------------------------------------------
# Reading and checking files
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class Sequence:
    """One GT sequence: its folder, length, GT rows and the frames that are evaluation timesteps."""

    name: str
    path: Path
    length: int
    gt: np.ndarray | None = None            # (N, >=8) rows as in gt.txt
    timesteps: np.ndarray | None = None     # 1-based frame numbers evaluated, increasing
    results: np.ndarray | None = None       # (M, >=8) tracker rows, or None when the result file is missing
    result_file: Path | None = None


def find_sequences(gt_dir: str | Path) -> dict[str, Path]:
    """The sequence folders of ``gt_dir`` (those with ``gt/gt.txt``), by name, sorted."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise EvaluationError(f"GT folder not found: {gt_dir}")
    seqs = {p.name: p for p in sorted(gt_dir.iterdir()) if (p / "gt" / "gt.txt").is_file()}
    if not seqs:
        nested = [p for p in gt_dir.iterdir() if p.is_dir() and any((p / s / "gt" / "gt.txt").is_file()
                                                                    for s in os.listdir(p))]
        hint = f" (it holds split folders such as {nested[0].name}: pass one split)" if nested else ""
        raise EvaluationError(f"no sequences (<seq>/gt/gt.txt) in GT folder {gt_dir}{hint}")
    return seqs


def read_seq_length(seq_dir: Path) -> int:
    ini = seq_dir / "seqinfo.ini"
    if not ini.is_file():
        raise EvaluationError(f"{ini}: missing (needed for seqLength)")
    parser = configparser.ConfigParser()
    try:
        parser.read(ini)
        length = int(parser["Sequence"]["seqLength"])
    except (KeyError, ValueError, configparser.Error) as err:
        raise EvaluationError(f"{ini}: no valid [Sequence] seqLength ({err})") from None
    if length < 1:
        raise EvaluationError(f"{ini}: seqLength {length} < 1")
    return length


def read_key_frames(seq_dir: Path, length: int) -> np.ndarray:
    """The 1-based keyframe numbers of an exported sequence (``frames.csv`` rows with ``is_key_frame`` 1)."""
    path = seq_dir / "frames.csv"
    if not path.is_file():
        raise EvaluationError(f"{path}: missing (the keyframes protocol needs it; use protocol 'all' otherwise)")
    lines = path.read_text().splitlines()
    if not lines:
        raise EvaluationError(f"{path}: empty")
    header = [h.strip() for h in lines[0].split(",")]
    if "frame" not in header or "is_key_frame" not in header:
        raise EvaluationError(f"{path}: header needs 'frame' and 'is_key_frame' (got {lines[0]!r})")
    i_frame, i_key = header.index("frame"), header.index("is_key_frame")
    keys = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            frame = int(parts[i_frame])
            flag = parts[i_key].strip().lower()
        except (IndexError, ValueError):
            raise EvaluationError(f"{path}, line {lineno}: cannot read frame/is_key_frame from {line!r}") from None
        if flag not in ("0", "1", "true", "false"):
            raise EvaluationError(f"{path}, line {lineno}: is_key_frame must be 0/1, got {parts[i_key]!r}")
        if not 1 <= frame <= length:
            raise EvaluationError(f"{path}, line {lineno}: frame {frame} outside 1..seqLength={length}")
        if flag in ("1", "true"):
            keys.append(frame)
    return np.unique(np.asarray(keys, dtype=np.int64))


def read_mot_file(path: Path, seq_length: int, *, kind: str, min_cols: int, max_cols: int,
                  class_check=None, one_class_per_id: bool = False) -> np.ndarray:
    """Read and check a MOTChallenge text file; returns a float array (rows, columns).

    ``kind`` is 'GT' or 'result' (for messages). Checks: the number of columns (the same on every line, between
    ``min_cols`` and ``max_cols``), numeric and finite values, integer frames in 1..``seq_length``, integer ids
    >= 0, classes (column 8) through ``class_check(value) -> bool`` when given, ids unique per frame (across
    classes) and, with ``one_class_per_id``, one class per id over the file (:func:`check_one_class_per_id`).
    Every error names the file and the line number.
    """
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise EvaluationError(f"{path}: not a text file") from None
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    n_cols = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        parts = [p.strip() for p in (stripped.split(",") if "," in stripped else stripped.split())]
        if len(parts) > 1 and parts[-1] == "":  # a trailing comma
            parts = parts[:-1]
        if not min_cols <= len(parts) <= max_cols:
            want = f"{min_cols}" if min_cols == max_cols else f"{min_cols} to {max_cols}"
            raise EvaluationError(f"{path}, line {lineno}: {len(parts)} columns, expected {want} "
                                  f"(frame,id,x,y,w,h,score,class,...): {line!r}")
        if n_cols is None:
            n_cols = len(parts)
        elif len(parts) != n_cols:
            raise EvaluationError(f"{path}, line {lineno}: {len(parts)} columns where earlier lines have {n_cols}: "
                                  f"{line!r}")
        rows.append(parts)
        line_numbers.append(lineno)
    if not rows:
        return np.zeros((0, max_cols), dtype=float)
    try:
        data = np.array(rows, dtype=float)
    except ValueError:
        data = None
    if data is None:
        for parts, lineno in zip(rows, line_numbers):
            for j, value in enumerate(parts):
                try:
                    float(value)
                except ValueError:
                    raise EvaluationError(f"{path}, line {lineno}: column {j + 1} is not a number: {value!r}") from None
        raise EvaluationError(f"{path}: cannot be read as numbers")  # pragma: no cover - the loop above finds it
    lines = np.asarray(line_numbers)

    def fail(mask: np.ndarray, message) -> None:
        if np.any(mask):
            k = int(np.flatnonzero(mask)[0])
            raise EvaluationError(f"{path}, line {lines[k]}: {message(k)}")

    fail(~np.all(np.isfinite(data[:, :6]), axis=1), lambda k: f"non-finite value in frame/id/box: {rows[k]}")
    frame, ids = data[:, 0], data[:, 1]
    fail(frame != np.round(frame), lambda k: f"frame {rows[k][0]!r} is not an integer")
    seq_name = path.stem if kind == "result" else path.parent.parent.name
    fail((frame < 1) | (frame > seq_length),
         lambda k: f"frame {int(frame[k])} is outside 1..seqLength={seq_length} of sequence {seq_name}")
    fail(ids != np.round(ids), lambda k: f"track id {rows[k][1]!r} is not an integer")
    fail(ids < 0, lambda k: f"negative track id {int(ids[k])}")
    if class_check is not None and data.shape[1] >= 8:
        cls = data[:, 7]
        uniq = np.unique(cls)
        bad = ~np.isin(cls, [u for u in uniq if class_check(u)])
        valid = (f"0..{len(CLASS_NAMES) - 1} ({', '.join(f'{i}={n}' for i, n in enumerate(CLASS_NAMES))})"
                 if class_check is _is_project_class else "-1 or 1 (pedestrian)")
        fail(bad, lambda k: f"unknown class id {rows[k][7]!r} in column 8 (valid: {valid})")
    # Ids unique per frame (across classes): TrackEval checks this on the raw data before class filtering.
    order = np.lexsort((ids, frame))
    same = (np.diff(frame[order]) == 0) & (np.diff(ids[order]) == 0)
    if np.any(same):
        k = int(np.flatnonzero(same)[0])
        a, b = sorted((int(order[k]), int(order[k + 1])))
        raise EvaluationError(f"{path}, line {lines[b]}: track id {int(ids[b])} appears twice in frame "
                              f"{int(frame[b])} (also line {lines[a]}); ids must be unique per frame across classes")
    if one_class_per_id and data.shape[1] >= 8:
        check_one_class_per_id(path, data, lines)
    return data


def _class_label(value: float) -> str:
    return f"{int(value)} ({CLASS_NAMES[int(value)]})" if _is_project_class(value) else f"{value:g}"


def check_one_class_per_id(path: Path, data: np.ndarray, lines: np.ndarray) -> None:
    """EvaluationError when a track id of ``data`` (rows of ``path``, read from the file's lines ``lines``) changes
    class (column 8): the classes are evaluated separately, so such a track would silently count as one track per
    class. The message names the first line, in file order, where an id has another class than on its first line."""
    ids, cls = data[:, 1], data[:, 7]
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    first_of_row = first[inverse.reshape(-1)]
    changed = np.flatnonzero(cls != cls[first_of_row])
    if len(changed):
        k = int(changed[0])
        j = int(first_of_row[k])
        raise EvaluationError(f"{path}, line {lines[k]}: track id {int(ids[k])} has class {_class_label(cls[k])}, "
                              f"but class {_class_label(cls[j])} on line {lines[j]}; a track keeps one class (the "
                              f"classes are evaluated separately: it would count as two tracks)")


def _is_project_class(value: float) -> bool:
    return float(value).is_integer() and 0 <= int(value) < len(CLASS_NAMES)


def _is_mot_tracker_class(value: float) -> bool:
    # TrackEval's MotChallenge2DBox rejects tracker classes > 1 (pedestrian only); -1 (no class) is usual.
    return float(value).is_integer() and value <= 1


def _first(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def _find_result_files(results_dir: Path, seq_names: list[str]) -> tuple[dict[str, Path], list[str]]:
    """``results_dir``'s ``<seq>.txt`` by sequence, and the sequences of ``seq_names`` without one (warned about on
    stderr; they count as empty predictions). EvaluationError: no such folder, a file for a sequence not in
    ``seq_names``, or no file for any of them (nothing would be scored)."""
    if not results_dir.is_dir():
        raise EvaluationError(f"results folder not found: {results_dir}")
    files = {p.stem: p for p in sorted(results_dir.glob("*.txt")) if p.is_file()}
    unknown = sorted(set(files) - set(seq_names))
    if unknown:
        raise EvaluationError(f"result file(s) for sequences not in the GT: "
                              f"{', '.join(str(files[u]) for u in unknown[:5])}"
                              f"{' ...' if len(unknown) > 5 else ''} ({len(unknown)} in all)")
    if not files:
        raise EvaluationError(f"no result file in {results_dir} for any of the {len(seq_names)} GT sequences; "
                              f"expected <sequence>.txt files such as {_first([f'{s}.txt' for s in seq_names], 3)}")
    missing = [s for s in seq_names if s not in files]
    if missing:
        tqdm.write(f"warning: {len(missing)} of {len(seq_names)} sequences have no result file in {results_dir} "
                   f"(counted as empty predictions, all misses): {_first(missing)}", file=sys.stderr)
    return files, missing


# ----------------------------------------------------------------------------------------------------------------
# TrackEval dataset for the 7 classes
# ----------------------------------------------------------------------------------------------------------------

def read_project_sequence(seq: Sequence, protocol: str) -> Sequence:
    """Fill ``seq`` (7-class path): its GT rows, its evaluated frames for ``protocol`` and its result rows (when
    ``seq.result_file`` is set), every file checked."""
    seq.gt = read_mot_file(seq.path / "gt" / "gt.txt", seq.length, kind="GT", min_cols=8, max_cols=10,
                           class_check=_is_project_class)
    seq.timesteps = (read_key_frames(seq.path, seq.length) if protocol == "keyframes"
                     else np.arange(1, seq.length + 1, dtype=np.int64))
    if seq.result_file is not None:
        seq.results = read_mot_file(seq.result_file, seq.length, kind="result", min_cols=8, max_cols=10,
                                    class_check=_is_project_class, one_class_per_id=True)
    return seq


def load_project_sequences(gt_dir: str | Path, results_dir: str | Path,
                           protocol: str = "keyframes") -> tuple[list[Sequence], list[str]]:
    """Every GT sequence of ``gt_dir`` read for the 7-class path -> (sequences, names without a result file)."""
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    seq_dirs = find_sequences(gt_dir)
    files, missing = _find_result_files(Path(results_dir), list(seq_dirs))
    sequences = []
    for name, path in seq_dirs.items():
        seq = Sequence(name=name, path=path, length=read_seq_length(path), result_file=files.get(name))
        sequences.append(read_project_sequence(seq, protocol))
    return sequences, missing


def _trackeval():
    import trackeval  # imported lazily: it pulls matplotlib/scipy

    return trackeval


def _split_by_timestep(rows: np.ndarray, frame_to_t: np.ndarray, n_t: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows kept on evaluated frames, grouped by timestep: (rows sorted, list of index arrays per timestep)."""
    if len(rows) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return rows, [empty] * n_t
    t = frame_to_t[rows[:, 0].astype(np.int64)]
    keep = t >= 0
    rows, t = rows[keep], t[keep]
    order = np.argsort(t, kind="stable")
    rows, t = rows[order], t[order]
    bounds = np.searchsorted(t, np.arange(n_t + 1))
    return rows, [np.arange(bounds[i], bounds[i + 1]) for i in range(n_t)]


def _make_dataset_class():
    trackeval = _trackeval()
    base = trackeval.datasets._base_dataset._BaseDataset

    class NuScenesMot2DBox(base):
        """TrackEval dataset: the project's 7 classes, no distractors, class combination on.

        The sequences arrive already read and checked (:func:`read_mot_file`); each sequence's timesteps are its
        evaluated frames (all frames, or the keyframes only). Per class, GT rows (with a non-zero consider flag)
        and tracker rows of that class are kept; ids are relabelled to 0..n-1 per class and sequence.
        """

        @staticmethod
        def get_default_dataset_config():
            return {}

        def __init__(self, sequences: list[Sequence], tracker_name: str = "tracker", output_fol: str = "."):
            super().__init__()
            self.config = {}
            self.tracker_list = [tracker_name]
            self.seq_list = [s.name for s in sequences]
            self.class_list = list(CLASS_NAMES)
            self.output_fol = output_fol
            self.output_sub_fol = ""
            self.should_classes_combine = True
            self.use_super_categories = False
            self._seqs = {s.name: s for s in sequences}

        def _load_raw_file(self, tracker, seq, is_gt):
            s = self._seqs[seq]
            n_t = len(s.timesteps)
            frame_to_t = np.full(s.length + 1, -1, dtype=np.int64)
            frame_to_t[s.timesteps] = np.arange(n_t)
            rows = s.gt if is_gt else s.results
            if rows is None:  # missing result file: an empty prediction set
                rows = np.zeros((0, 10))
            rows, groups = _split_by_timestep(rows, frame_to_t, n_t)
            dets = [rows[g, 2:6].reshape(-1, 4) for g in groups]
            ids = [rows[g, 1].astype(np.int64) for g in groups]
            classes = [rows[g, 7].astype(np.int64) for g in groups]
            prefix = "gt" if is_gt else "tracker"
            raw = {f"{prefix}_ids": ids, f"{prefix}_classes": classes, f"{prefix}_dets": dets,
                   "num_timesteps": n_t, "seq": seq}
            if is_gt:
                raw["gt_extras"] = [{"zero_marked": rows[g, 6].astype(np.int64)} for g in groups]
                raw["gt_crowd_ignore_regions"] = [np.zeros((0, 4))] * n_t
            else:
                raw["tracker_confidences"] = [rows[g, 6] for g in groups]
            return raw

        def get_preprocessed_seq_data(self, raw_data, cls):
            self._check_unique_ids(raw_data)
            cls_id = CLASS_IDS[cls]
            n_t = raw_data["num_timesteps"]
            keys = ("gt_ids", "tracker_ids", "gt_dets", "tracker_dets", "tracker_confidences", "similarity_scores")
            data = {k: [None] * n_t for k in keys}
            for t in range(n_t):
                gt_keep = (raw_data["gt_classes"][t] == cls_id) & (raw_data["gt_extras"][t]["zero_marked"] != 0)
                tr_keep = raw_data["tracker_classes"][t] == cls_id
                data["gt_ids"][t] = raw_data["gt_ids"][t][gt_keep]
                data["gt_dets"][t] = raw_data["gt_dets"][t][gt_keep]
                data["tracker_ids"][t] = raw_data["tracker_ids"][t][tr_keep]
                data["tracker_dets"][t] = raw_data["tracker_dets"][t][tr_keep]
                data["tracker_confidences"][t] = raw_data["tracker_confidences"][t][tr_keep]
                data["similarity_scores"][t] = raw_data["similarity_scores"][t][gt_keep][:, tr_keep]
            for key, num_key in (("gt_ids", "num_gt_ids"), ("tracker_ids", "num_tracker_ids")):
                all_ids = np.concatenate(data[key]) if n_t else np.zeros(0, np.int64)
                uniq, inverse = np.unique(all_ids, return_inverse=True)
                splits = np.cumsum([len(x) for x in data[key]])[:-1]
                data[key] = [x.astype(np.int64) for x in np.split(inverse.reshape(-1), splits)] if n_t else []
                data[num_key] = int(len(uniq))
                data[f"{key}_original"] = uniq  # relabelled id k was uniq[k] in the files (for diagnostics)
            data["num_gt_dets"] = int(sum(len(x) for x in data["gt_ids"]))
            data["num_tracker_dets"] = int(sum(len(x) for x in data["tracker_ids"]))
            data["num_timesteps"] = n_t
            data["seq"] = raw_data["seq"]
            self._check_unique_ids(data, after_preproc=True)
            return data

        def _calculate_similarities(self, gt_dets_t, tracker_dets_t):
            return self._calculate_box_ious(gt_dets_t, tracker_dets_t, box_format="xywh")

    # A module-level name, so that TrackEval's parallel mode can pickle the dataset.
    NuScenesMot2DBox.__qualname__ = "NuScenesMot2DBox"
    NuScenesMot2DBox.__module__ = __name__
    return NuScenesMot2DBox


def dataset_class():
    """The TrackEval dataset class for the 7 classes (built on first use so importing this module stays light;
    also reachable as ``trackssm_lib.evaluation.NuScenesMot2DBox``)."""
    if "NuScenesMot2DBox" not in globals():
        globals()["NuScenesMot2DBox"] = _make_dataset_class()
    return globals()["NuScenesMot2DBox"]


def __getattr__(name: str):
    if name == "NuScenesMot2DBox":
        return dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------------------------
# Running TrackEval and collecting results
# ----------------------------------------------------------------------------------------------------------------

def _metrics():
    trackeval = _trackeval()
    return [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"THRESHOLD": IOU_THRESHOLD, "PRINT_CONFIG": False}),
            trackeval.metrics.Identity({"THRESHOLD": IOU_THRESHOLD, "PRINT_CONFIG": False})]


def _count_sequences(dataset, bar) -> None:
    """Advance ``bar`` through TrackEval's serial per-sequence loop: ``get_raw_seq_data`` is the first step of each
    sequence's evaluation (``trackeval.eval.eval_sequence``), so each call marks the sequence before it finished and
    names the new one in the postfix. Set on the instance only (serial mode: the dataset is never pickled)."""
    load = dataset.get_raw_seq_data
    started: list[str] = []

    def counted(tracker, seq):
        if started:
            bar.update(1)
        started.append(seq)
        bar.set_postfix_str(str(seq), refresh=False)
        return load(tracker, seq)

    dataset.get_raw_seq_data = counted


def _run_evaluator(dataset, metrics, cores: int, verbose: bool, bar=None) -> dict:
    """TrackEval's Evaluator on ``dataset`` -> its results of the one tracker. ``bar`` (a tqdm with total = the
    number of sequences): advanced per sequence as TrackEval reaches it (``cores`` 1), or all at once when the
    parallel workers return (``cores`` > 1: the project cannot see inside them); full when this returns."""
    trackeval = _trackeval()
    config = {"USE_PARALLEL": cores > 1, "NUM_PARALLEL_CORES": max(1, cores), "BREAK_ON_ERROR": True,
              "RETURN_ON_ERROR": False, "LOG_ON_ERROR": None, "PRINT_RESULTS": False, "PRINT_ONLY_COMBINED": False,
              "PRINT_CONFIG": False, "TIME_PROGRESS": False, "DISPLAY_LESS_PROGRESS": True,
              "OUTPUT_SUMMARY": False, "OUTPUT_EMPTY_CLASSES": False, "OUTPUT_DETAILED": False,
              "PLOT_CURVES": False}
    evaluator = trackeval.Evaluator(config)
    if bar is not None and cores <= 1:
        _count_sequences(dataset, bar)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sys.stdout if verbose else sink):
            res, msg = evaluator.evaluate([dataset], metrics)
    except trackeval.utils.TrackEvalException as err:
        raise EvaluationError(f"TrackEval rejected the input: {err}") from None
    if bar is not None:
        bar.update(bar.total - bar.n)
    name = dataset.get_name()
    tracker = dataset.tracker_list[0]
    if res[name][tracker] is None:  # pragma: no cover - BREAK_ON_ERROR raises before this
        raise EvaluationError(f"TrackEval failed: {msg[name][tracker]}")
    return res[name][tracker]


def _num(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def flatten_metrics(res: dict) -> dict:
    """TrackEval results of one (sequence or combination, class) -> flat dict: percentages 0-100, integer counts.

    HOTA's per-alpha fields are averaged over the alphas (as TrackEval reports them). Aliases: FP = CLR_FP,
    FN = CLR_FN, TP = CLR_TP.
    """
    out: dict = {}
    h = res["HOTA"]
    for f in _HOTA_ARRAY_FIELDS:
        if f in h:
            out[f] = _num(100 * np.mean(h[f]))
    for f in _HOTA_FLOAT_FIELDS:
        if f in h:
            out[f] = _num(100 * h[f])
    c = res["CLEAR"]
    for f in _CLEAR_PERCENT:
        if f in c:
            out[f] = _num(100 * c[f])
    if "FP_per_frame" in c:
        out["FP_per_frame"] = _num(c["FP_per_frame"])
    for f in _CLEAR_INT:
        if f in c:
            out[f] = int(round(float(c[f])))
    i = res["Identity"]
    for f in _ID_PERCENT:
        out[f] = _num(100 * i[f])
    for f in _ID_INT:
        out[f] = int(round(float(i[f])))
    for f in _COUNT_INT:
        out[f] = int(round(float(res["Count"][f])))
    out["FP"], out["FN"], out["TP"] = out["CLR_FP"], out["CLR_FN"], out["CLR_TP"]
    return out


def _class_average_present(metrics, per_class_res: dict) -> dict:
    """TrackEval's class average over the classes with any GT or prediction (``ignore_empty_classes=True``)."""
    out = {}
    for metric in metrics + [_trackeval().metrics.Count()]:
        name = metric.get_name()
        cls_res = {c: r[name] for c, r in per_class_res.items()}
        if name == "Count":
            out[name] = metric.combine_classes_class_averaged(cls_res)
        else:
            out[name] = metric.combine_classes_class_averaged(cls_res, ignore_empty_classes=True)
    return out


def _has_data(m: dict) -> bool:
    return m["GT_Dets"] > 0 or m["Dets"] > 0


# ----------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------

def evaluate(gt_dir: str | Path, results_dir: str | Path, out_dir: str | Path | None, protocol: str = "keyframes",
             benchmark: str | None = None, cores: int = 1, verbose: bool = False, print_summary: bool = True,
             progress: bool = False) -> dict:
    """Evaluate tracker results against GT with TrackEval; write ``out_dir/metrics.json`` and ``summary.txt``.

    ``gt_dir``: folder of sequence folders; ``results_dir``: folder of ``<seq>.txt``. ``protocol``: 'keyframes'
    (2 Hz annotated frames only; the headline) or 'all' (every frame) for the 7-class path; ignored with
    ``benchmark`` (MOT15/16/17/20: TrackEval's MotChallenge2DBox rules, pedestrian only). ``cores`` > 1 runs
    TrackEval's sequences in parallel. ``progress``: two tqdm bars on stderr, both counting sequences: reading and
    checking the files (``evaluate read``), then TrackEval's evaluation (``evaluate TrackEval``, the sequence in its
    postfix; with ``cores`` > 1 it fills when the workers return). Off by default (library callers); the CLI turns
    it on. Returns the metrics dict (see module docstring).
    """
    t0 = time.perf_counter()
    gt_dir, results_dir = Path(gt_dir), Path(results_dir)
    if benchmark is not None:
        bench = str(benchmark).upper()
        if bench not in BENCHMARKS:
            raise EvaluationError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
        protocol_used = "all"
    else:
        bench = None
        if protocol not in PROTOCOLS:
            raise EvaluationError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        protocol_used = protocol

    seq_dirs = find_sequences(gt_dir)
    names = list(seq_dirs)
    files, missing = _find_result_files(results_dir, names)
    sequences = []
    with tqdm(names, desc="evaluate read", unit="seq", disable=not progress, file=sys.stderr) as bar:
        for name in bar:
            seq = Sequence(name=name, path=seq_dirs[name], length=read_seq_length(seq_dirs[name]))
            seq.result_file = files.get(name)
            if bench is None:
                read_project_sequence(seq, protocol)
            elif seq.result_file is not None:
                # Checked here for clear messages; TrackEval then reads the files itself.
                read_mot_file(seq.result_file, seq.length, kind="result", min_cols=7, max_cols=10,
                              class_check=_is_mot_tracker_class)
            sequences.append(seq)
    t_read = time.perf_counter() - t0

    metrics = _metrics()
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trackssm_eval_") as tmp:
        if bench is None:
            dataset = dataset_class()(sequences, tracker_name="tracker", output_fol=tmp)
        else:
            dataset = _benchmark_dataset(bench, gt_dir, sequences, Path(tmp))
        with tqdm(total=len(sequences), desc="evaluate TrackEval", unit="seq", disable=not progress,
                  file=sys.stderr) as bar:
            res = _run_evaluator(dataset, metrics, cores, verbose, bar if progress else None)
    t_eval = time.perf_counter() - t1

    combined = res["COMBINED_SEQ"]
    class_list = list(CLASS_NAMES) if bench is None else ["pedestrian"]
    per_class = {c: flatten_metrics(combined[c]) for c in class_list}
    if bench is None:
        combined_class_avg = flatten_metrics(_class_average_present(metrics, {c: combined[c] for c in class_list}))
        combined_class_avg_all = flatten_metrics(combined["cls_comb_cls_av"])
        combined_det_avg = flatten_metrics(combined["cls_comb_det_av"])
    else:
        combined_class_avg = combined_class_avg_all = combined_det_avg = per_class["pedestrian"]
    per_sequence = {}
    for s in names:
        per_sequence[s] = {c: m for c in class_list
                           if _has_data(m := flatten_metrics(res[s][c])) or bench is not None}
    classes_evaluated = [c for c in class_list if _has_data(per_class[c])]
    out = {
        "per_class": per_class,
        "combined_class_avg": combined_class_avg,
        "combined_det_avg": combined_det_avg,
        "combined_class_avg_all_classes": combined_class_avg_all,
        "classes_with_data": classes_evaluated,
        "sequences": names,
        "missing_sequences": missing,
        "per_sequence": per_sequence,
        "protocol": protocol_used,
        "benchmark": bench,
        "iou_threshold": IOU_THRESHOLD,
        "timesteps": int(sum(len(s.timesteps) for s in sequences)) if bench is None else
        int(sum(s.length for s in sequences)),
        "gt_dir": str(gt_dir),
        "results_dir": str(results_dir),
        "timing_s": {"read": round(t_read, 3), "trackeval": round(t_eval, 3),
                     "total": round(time.perf_counter() - t0, 3)},
        "notes": ("percentages 0-100 (HOTA fields averaged over TrackEval's alphas), counts as integers; "
                  "combined_class_avg: TrackEval class average over the classes with any GT or prediction; "
                  "combined_class_avg_all_classes: TrackEval's cls_comb_cls_av over all 7 classes (empty ones as 0); "
                  "combined_det_avg: TrackEval's cls_comb_det_av; missing sequences count as empty predictions"),
    }
    summary = format_summary(out)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json_atomic(out_dir / "metrics.json", out)
        write_text_atomic(out_dir / "summary.txt", summary)
    if print_summary:
        print(summary, end="")
    return out


def _benchmark_dataset(bench: str, gt_dir: Path, sequences: list[Sequence], tmp: Path):
    """TrackEval's MotChallenge2DBox on the user's GT folder; results linked (or empty files for missing ones)."""
    trackeval = _trackeval()
    tracker_dir = tmp / "trackers" / "tracker"
    tracker_dir.mkdir(parents=True)
    for s in sequences:
        target = tracker_dir / f"{s.name}.txt"
        if s.result_file is None:
            target.write_text("")
        else:
            try:
                target.symlink_to(s.result_file.resolve())
            except OSError:  # pragma: no cover - filesystems without symlinks
                target.write_bytes(s.result_file.read_bytes())
    config = {"GT_FOLDER": str(gt_dir), "TRACKERS_FOLDER": str(tmp / "trackers"), "OUTPUT_FOLDER": str(tmp / "out"),
              "TRACKERS_TO_EVAL": ["tracker"], "CLASSES_TO_EVAL": ["pedestrian"], "BENCHMARK": bench,
              "SPLIT_TO_EVAL": "train", "INPUT_AS_ZIP": False, "PRINT_CONFIG": False, "DO_PREPROC": True,
              "TRACKER_SUB_FOLDER": "", "OUTPUT_SUB_FOLDER": "", "SKIP_SPLIT_FOL": True,
              "SEQ_INFO": {s.name: s.length for s in sequences}}
    try:
        return trackeval.datasets.MotChallenge2DBox(config)
    except trackeval.utils.TrackEvalException as err:
        raise EvaluationError(f"TrackEval rejected the input: {err}") from None


def _fmt(value, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, int):
        return str(value).rjust(width)
    return f"{value:.2f}".rjust(width)


def format_summary(metrics: dict) -> str:
    """A readable table: one row per class with data, then the combined rows."""
    title = (f"benchmark {metrics['benchmark']} (TrackEval MotChallenge2DBox)" if metrics["benchmark"]
             else f"protocol {metrics['protocol']} (TrackEval, 7 classes)")
    rows = [(c, metrics["per_class"][c]) for c in metrics["per_class"]
            if _has_data(metrics["per_class"][c]) or metrics["benchmark"]]
    if not metrics["benchmark"]:
        rows += [("class avg", metrics["combined_class_avg"]), ("det avg", metrics["combined_det_avg"])]
    name_w = max(12, *(len(r[0]) for r in rows))
    widths = [max(7, len(c) + 1) for c in SUMMARY_COLUMNS]
    lines = [f"Tracking evaluation: {title}; {len(metrics['sequences'])} sequences, "
             f"{metrics['timesteps']} timesteps; IoU threshold {metrics['iou_threshold']} (CLEAR/Identity)",
             "".ljust(name_w) + "".join(c.rjust(w) for c, w in zip(SUMMARY_COLUMNS, widths))]
    for name, m in rows:
        lines.append(name.ljust(name_w) + "".join(_fmt(m.get(c), w) for c, w in zip(SUMMARY_COLUMNS, widths)))
    if not metrics["benchmark"]:
        empty = [c for c in metrics["per_class"] if c not in metrics["classes_with_data"]]
        if empty:
            lines.append(f"classes without GT or predictions (not in the class average): {', '.join(empty)}")
    missing = metrics["missing_sequences"]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        lines.append(f"MISSING result files ({len(missing)} of {len(metrics['sequences'])} sequences, "
                     f"counted as empty predictions): {shown}")
    else:
        lines.append("missing result files: none")
    t = metrics["timing_s"]
    lines.append(f"time: read {t['read']:.2f} s, TrackEval {t['trackeval']:.2f} s, total {t['total']:.2f} s")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------

def _evaluate_command(args: argparse.Namespace) -> int:
    evaluate(args.gt, args.results, args.out, protocol=args.protocol, benchmark=args.benchmark, cores=args.cores,
             verbose=args.verbose, progress=not args.quiet)
    print(f"metrics written to {Path(args.out) / 'metrics.json'}", file=sys.stderr)
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on an argparse subparsers object (``parser.add_subparsers(...)``)."""
    p = subparsers.add_parser(
        "evaluate", help="score tracker results with TrackEval (7 classes, or a MOTChallenge benchmark)",
        description="Score tracker results with TrackEval (HOTA, CLEAR, Identity). Without --benchmark: the 7 "
                    "nuScenes tracking classes on an exported split. With --benchmark: standard MOTChallenge data "
                    "with TrackEval's rules for that benchmark. Sequences without a result file count as empty "
                    "predictions and are reported.")
    p.add_argument("--gt", required=True, help="folder of sequence folders (<seq>/gt/gt.txt, <seq>/seqinfo.ini)")
    p.add_argument("--results", required=True, help="folder of <seq>.txt result files")
    p.add_argument("--out", required=True, help="output folder for metrics.json and summary.txt")
    p.add_argument("--protocol", default="keyframes", choices=PROTOCOLS,
                   help="keyframes: only the annotated 2 Hz frames (headline); all: every 12 Hz frame")
    p.add_argument("--benchmark", default=None, choices=BENCHMARKS, type=str.upper,
                   help="evaluate standard MOTChallenge data with TrackEval's rules for this benchmark")
    p.add_argument("--cores", type=int, default=1, help="parallel TrackEval workers (default 1: serial)")
    p.add_argument("--verbose", action="store_true", help="show TrackEval's own output")
    p.add_argument("--quiet", action="store_true", help="no progress bars (sequences read, sequences evaluated)")
    p.set_defaults(func=_evaluate_command)
    return p
