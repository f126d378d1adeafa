"""Trackers compared on the same detections: tracking, TrackEval metrics, the published targets.

:func:`compare_trackers` runs every tracker (``{'name', 'tracker', 'checkpoint'}``) on every detection source of a
prepared split with :func:`trackssm_lib.tracking.run_tracking` and scores it with
:func:`trackssm_lib.evaluation.evaluate`. Results go to ``out_dir/<name>/<detections>/`` (``results/<seq>.txt``,
``eval/metrics.json``, ``settings.json``); a folder whose ``settings.json`` matches the requested settings
(tracker, checkpoint content, detections, seed, split, protocol, sequences) and has its ``metrics.json`` is reused,
so a second report run only reads it back. A tracker that cannot run (checkpoint file missing, BoxMOT not
installed) gives one row per detection source with ``status='unavailable'`` and the reason; it is never dropped
and never gets a number.

:func:`published_targets_table` checks the published TrackSSM targets (identity switches -70 % against the
zero-shot model, IDF1 > 60 %, HOTA > 50 %, MOTA >= 80 %) on the rows.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from trackssm_lib.constants import CLASS_NAMES
from trackssm_lib.data import split_sequence_dirs
from trackssm_lib.fileio import write_json_atomic
from trackssm_lib.records import file_sha256
from trackssm_lib.splits import equivalent_split
from trackssm_lib.tracking import TRACK_THREADS

COMBINED = {"combined_class_avg": "all (class avg)", "combined_det_avg": "all (detection avg)"}
METRICS = ("HOTA", "MOTA", "IDF1", "IDSW", "DetA", "AssA")
ROW_KEYS = ("tracker", "detections", "class_name", *METRICS, "fps", "sequences", "status", "reason")


class ComparisonError(ValueError):
    """Bad comparison request: no trackers, duplicate names, unknown split."""


# ---------------------------------------------------------------------------------------------- splits
def export_version(data_dir: str | Path) -> str | None:
    """``v1.0-mini`` / ``v1.0-trainval`` from the export's split folders (or its ``export.json``), else None."""
    data_dir = Path(data_dir)
    manifest = data_dir / "export.json"
    if manifest.is_file():
        try:
            version = json.loads(manifest.read_text()).get("version")
            if version:
                return str(version)
        except (ValueError, AttributeError):
            pass
    for version, names in (("v1.0-mini", ("mini_train", "mini_val")), ("v1.0-trainval", ("train", "val", "test"))):
        if any((data_dir / n).is_dir() or (data_dir / "seqmaps" / f"{n}.txt").is_file() for n in names):
            return version
    return None


def resolve_split(data_dir: str | Path, split: str) -> str:
    """The export's name for ``split``: on v1.0-mini ``test`` (and ``val``) is ``mini_val``, ``train`` is
    ``mini_train``; on v1.0-trainval ``mini_val`` is ``val``. A split the export has is kept as it is."""
    data_dir = Path(data_dir)
    if (data_dir / split).is_dir() or (data_dir / "seqmaps" / f"{split}.txt").is_file():
        return split
    return equivalent_split(export_version(data_dir) or "", split)


def split_subset(data_dir: str | Path, split: str, max_sequences: int | None,
                 work_dir: str | Path) -> tuple[Path, list[str]]:
    """(export root to track, sequence names): the whole split, or a folder of links to its first
    ``max_sequences`` sequences (in split order) under ``work_dir/subset``."""
    dirs = split_sequence_dirs(data_dir, split)
    if max_sequences is None or max_sequences >= len(dirs):
        return Path(data_dir), [d.name for d in dirs]
    if max_sequences < 1:
        raise ComparisonError(f"max_sequences must be >= 1 or None, got {max_sequences}")
    chosen = dirs[:max_sequences]
    root = Path(work_dir) / "subset"
    split_dir = root / split
    split_dir.mkdir(parents=True, exist_ok=True)
    names = {d.name for d in chosen}
    for old in split_dir.iterdir():  # links of an earlier, different subset
        target = (Path(data_dir) / split / old.name).resolve()
        if old.is_symlink() and (old.name not in names or old.resolve() != target):
            old.unlink()
    for d in chosen:
        link = split_dir / d.name
        if not link.exists():
            link.symlink_to(d.resolve(), target_is_directory=True)
    return root, [d.name for d in chosen]


# ---------------------------------------------------------------------------------------------- trackers
def default_trackers(training_root: str | Path | None) -> list[dict[str, Any]]:
    """Kalman baseline, TrackSSM zero-shot (phase-0 weights), after phase 1 and after phase 2, the shipped headline
    model of the zoo with its track flags (and the Kalman filter that reads the same odometry), BoxMOT baselines."""
    from trackssm_lib.zoo import headline_specs

    root = Path(training_root) if training_root else None

    def ckpt(rel: str) -> str | None:
        return str(root / rel) if root else None

    return [
        {"name": "kalman", "tracker": "kalman", "checkpoint": None},
        {"name": "trackssm-zero-shot", "tracker": "trackssm", "checkpoint": ckpt("weights/phase0/phase0_pretrain.pth")},
        {"name": "trackssm-phase1", "tracker": "trackssm",
         "checkpoint": ckpt("weights/phase1/phase1_decoder_best.pth")},
        {"name": "trackssm-phase2", "tracker": "trackssm", "checkpoint": ckpt("weights/phase2/phase2_full_best.pth")},
        *headline_specs(),
        {"name": "bytetrack", "tracker": "boxmot:bytetrack", "checkpoint": None},
        {"name": "botsort", "tracker": "boxmot:botsort", "checkpoint": None},
        {"name": "ocsort", "tracker": "boxmot:ocsort", "checkpoint": None},
    ]


def resolve_checkpoints(trackers: Iterable[Mapping[str, Any]], training_root: str | Path | None) -> list[dict]:
    """Copies of ``trackers`` with relative checkpoint paths joined to ``training_root`` (when given)."""
    out = []
    for t in trackers:
        t = dict(t)
        ck = t.get("checkpoint")
        if ck and training_root and not Path(ck).is_absolute() and not str(ck).startswith("zoo:"):
            t["checkpoint"] = str(Path(training_root) / ck)
        out.append(t)
    return out


def tracker_unavailable(spec: Mapping[str, Any]) -> str | None:
    """Why the tracker cannot run here (missing checkpoint, BoxMOT not installed), or None."""
    from trackssm_lib.tracking import parse_tracker

    kind, name = parse_tracker(spec["tracker"])
    if kind == "trackssm":
        ck = spec.get("checkpoint")
        if not ck:
            return "no checkpoint given (TrackSSM is only compared with trained or pretrained weights)"
        if not Path(ck).is_file():
            return f"checkpoint not found: {ck}"
    if kind == "boxmot":
        from trackssm_lib.trackers.boxmot_adapter import TrackerUnavailableError, import_boxmot

        try:
            import_boxmot()
        except TrackerUnavailableError:
            return "not installed (optional package boxmot)"
    return None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "tracker"


def run_folder(out_dir: str | Path, tracker: str, detections: str) -> Path:
    """Where :func:`compare_trackers` keeps one (tracker, detections) run: ``results/``, ``eval/``, settings."""
    det = str(detections)
    return Path(out_dir) / _safe(tracker) / _safe(Path(det).name if det not in ("gt", "noisy") else det)


# ---------------------------------------------------------------------------------------------- rows
def metric_rows(metrics: Mapping[str, Any], tracker: str, detections: str, fps: float | None,
                sequences: int) -> list[dict[str, Any]]:
    """Rows of one evaluation: the classes with data, then the two combined rows."""
    rows = []
    entries = [(c, metrics["per_class"][c]) for c in metrics.get("classes_with_data", [])]
    entries += [(label, metrics[key]) for key, label in COMBINED.items()]
    for cls, m in entries:
        row = {"tracker": tracker, "detections": detections, "class_name": cls}
        row.update({k: m.get(k) for k in METRICS})
        row.update({"fps": fps, "sequences": sequences, "status": "ok", "reason": None})
        rows.append(row)
    return rows


def unavailable_row(tracker: str, detections: str, reason: str, sequences: int) -> dict[str, Any]:
    row = {"tracker": tracker, "detections": detections, "class_name": COMBINED["combined_class_avg"]}
    row.update({k: None for k in METRICS})
    row.update({"fps": None, "sequences": sequences, "status": "unavailable", "reason": reason})
    return row


def compare_trackers(data_dir: str | Path, split: str, trackers: Sequence[Mapping[str, Any]],
                     detections: Sequence[str] = ("gt", "noisy"), out_dir: str | Path = "outputs/comparison",
                     protocol: str = "keyframes", seed: int = 0, max_sequences: int | None = None,
                     progress: bool = False, say=print, lost_seconds: float = 1.0,
                     ego_compensation: bool = False, threads: int | None = TRACK_THREADS) -> list[dict[str, Any]]:
    """Run and score every tracker on every detection source; rows as in :data:`ROW_KEYS`.

    ``trackers``: ``[{'name': ..., 'tracker': 'kalman'|'trackssm'|'boxmot:NAME', 'checkpoint': path|zoo:NAME|None,
    'ego_compensation': bool (optional, overrides the argument for this tracker)}]``.
    ``split`` is mapped to the export's name (:func:`resolve_split`). Each (tracker, detections) pair gives its
    per-class rows and the combined rows ``all (class avg)`` / ``all (detection avg)``; ``fps`` is camera frames
    per second of the tracking run (of the run that made reused results). ``lost_seconds``: the lost-track timeout
    of the project's association (TrackSSM and Kalman; official 1 s); BoxMOT trackers keep their own buffers.
    ``ego_compensation``: remove the camera's rotation before each prediction (TrackSSM and Kalman, see
    :mod:`trackssm_lib.ego_motion`; off in the official tracker). ``threads``: torch's CPU threads while tracking
    (:func:`trackssm_lib.tracking.run_tracking`; the speeds are measured with it).
    """
    from trackssm_lib.evaluation import evaluate
    from trackssm_lib.export import export_identity
    from trackssm_lib.tracking import run_tracking
    from trackssm_lib.zoo import resolve_checkpoint

    trackers = [{**t, "checkpoint": resolve_checkpoint(t.get("checkpoint"))} for t in trackers]

    if not trackers:
        raise ComparisonError("no trackers to compare")
    if not lost_seconds >= 0:  # the association's rule (0: a track is dropped at its first miss); refuses NaN
        raise ComparisonError(f"lost_seconds must be >= 0, got {lost_seconds}")
    names = [t["name"] for t in trackers]
    if len(set(names)) != len(names):
        raise ComparisonError(f"tracker names must be unique, got {names}")
    split = resolve_split(data_dir, split)
    out_dir = Path(out_dir)
    root, seqs = split_subset(data_dir, split, max_sequences, out_dir)
    gt_dir = root / split
    data_identity = export_identity(data_dir)  # by content: a moved checkout keeps its finished runs
    rows: list[dict[str, Any]] = []
    done: dict[str, tuple[dict, Any, Path]] = {}  # same tracker, weights and settings under another name: same results
    for spec in trackers:
        reason = tracker_unavailable(spec)
        for det in detections:
            det = str(det)
            if reason:
                say(f"{spec['name']} ({det}): unavailable, {reason}")
                rows.append(unavailable_row(spec["name"], det, reason, len(seqs)))
                continue
            ck = spec.get("checkpoint")
            ego = bool(spec.get("ego_compensation", ego_compensation))
            assoc = {} if spec["tracker"].startswith("boxmot:") else {"lost_seconds": float(lost_seconds),
                                                                       "ego_compensation": ego}
            settings = {"tracker": spec["tracker"], "checkpoint": str(ck) if ck else None,
                        "checkpoint_sha256": file_sha256(ck) if ck else None, "detections": det,
                        "detections_dir": str(Path(det).resolve()) if det not in ("gt", "noisy") else None,
                        "seed": int(seed), "split": split, "protocol": protocol, "sequences": seqs,
                        "data": data_identity, "lost_seconds": assoc.get("lost_seconds"),
                        "ego_compensation": assoc.get("ego_compensation", False)}
            run_dir = run_folder(out_dir, spec["name"], det)
            res_dir, eval_dir, settings_file = run_dir / "results", run_dir / "eval", run_dir / "settings.json"
            key = json.dumps({k: v for k, v in settings.items() if k != "checkpoint"}, sort_keys=True)
            cached = None
            if settings_file.is_file() and (eval_dir / "metrics.json").is_file():
                try:
                    cached = json.loads(settings_file.read_text())
                except ValueError:
                    cached = None
            # the same run: the checkpoint by its sha256 (in ``key``), not its path
            if cached and json.dumps({k: v for k, v in cached.get("settings", {}).items() if k != "checkpoint"},
                                     sort_keys=True) == key:
                metrics = json.loads((eval_dir / "metrics.json").read_text())
                fps = cached.get("fps")
                say(f"{spec['name']} ({det}): reusing {run_dir}")
            else:
                settings_file.unlink(missing_ok=True)
                if key in done:  # copied: every tracker has its own result folder
                    metrics, fps, src = done[key]
                    for sub in ("results", "eval"):
                        shutil.rmtree(run_dir / sub, ignore_errors=True)
                        shutil.copytree(src / sub, run_dir / sub)
                    summary = json.loads((src / "settings.json").read_text()).get("tracking")
                    say(f"{spec['name']} ({det}): same tracker, weights and settings as an earlier row, results "
                        f"copied from {src}")
                else:
                    summary = run_tracking(root, split, tracker=spec["tracker"], detections=det, out=res_dir,
                                           checkpoint=ck or None, seed=seed, progress=progress, threads=threads,
                                           **assoc)
                    metrics = evaluate(gt_dir, res_dir, eval_dir, protocol=protocol, print_summary=False,
                                       progress=progress)
                    fps = summary.get("fps")
                write_json_atomic(settings_file, {"settings": settings, "fps": fps, "tracking": summary})
                hota = metrics["combined_class_avg"].get("HOTA")
                say(f"{spec['name']} ({det}): HOTA {'n/a' if hota is None else f'{hota:.1f}'}, {fps} frames/s")
            done.setdefault(key, (metrics, fps, run_dir))
            rows.extend(metric_rows(metrics, spec["name"], det, fps, len(seqs)))
    return rows


INTEGER_COLUMNS = ("IDSW", "sequences")


def rows_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = ROW_KEYS):
    """``rows`` as a pandas DataFrame with the counts (IDSW, sequences) as integers (empty where not available)."""
    import pandas as pd

    table = pd.DataFrame(list(rows), columns=list(columns))
    for col in INTEGER_COLUMNS:
        if col in table:
            table[col] = pd.to_numeric(table[col]).round().astype("Int64")
    return table


def per_class_table(rows: Iterable[Mapping[str, Any]], detections: str, metric: str):
    """One metric per tracker (rows) and class (columns, the class averages last) for one detection source; counts
    as integers. Narrow enough to print whole: a table per metric instead of one with every metric side by side."""
    sel = [r for r in rows if r["status"] == "ok" and r["detections"] == detections]
    table = rows_table(sel).pivot(index="tracker", columns="class_name", values=metric)
    classes = [c for c in CLASS_NAMES if c in table.columns]
    table = table[classes + [c for c in COMBINED.values() if c in table.columns]]
    order = list(dict.fromkeys(r["tracker"] for r in sel))
    table = table.loc[order]
    table.columns.name, table.index.name = f"{metric}, {detections}", None
    return table


def combined_rows(rows: Iterable[Mapping[str, Any]], combined: str = "combined_class_avg") -> list[dict]:
    """The combined rows (class- or detection-averaged) plus the unavailable ones."""
    label = COMBINED[combined]
    return [dict(r) for r in rows if r["class_name"] == label or r["status"] != "ok"]


def switch_cause_rows(data_dir: str | Path, split: str, rows: Iterable[Mapping[str, Any]],
                      out_dir: str | Path = "outputs/comparison", protocol: str = "keyframes",
                      max_sequences: int | None = None, lost_seconds: float = 1.0) -> list[dict[str, Any]]:
    """Identity switches of each run in ``rows`` (from :func:`compare_trackers` called with the same data, split,
    ``out_dir``, protocol and ``max_sequences``) split by cause, see :mod:`trackssm_lib.switch_analysis`.

    One row per (tracker, detections) that ran: ``swap``, ``long_absence``, ``missed``, ``track_lost`` and ``IDSW``
    (their sum, TrackEval's count summed over the classes). ``missed`` is told apart with the detections and seed the
    run recorded in its ``settings.json``.
    """
    from trackssm_lib.switch_analysis import find_switches, summarize_switches

    split = resolve_split(data_dir, split)
    root, _ = split_subset(data_dir, split, max_sequences, out_dir)
    out = []
    for r in combined_rows(rows):
        if r["status"] != "ok":
            continue
        run_dir = run_folder(out_dir, r["tracker"], r["detections"])
        settings = json.loads((run_dir / "settings.json").read_text())["settings"]
        detections = settings["detections_dir"] or settings["detections"]
        summary = summarize_switches(find_switches(root / split, run_dir / "results", protocol=protocol,
                                                   lost_seconds=lost_seconds, detections=detections,
                                                   seed=int(settings["seed"])))
        out.append({"tracker": r["tracker"], "detections": r["detections"], **summary["by_cause"],
                    "IDSW": summary["total"]})
    return out


# ---------------------------------------------------------------------------------------------- targets
PUBLISHED_TARGETS = (
    # (metric, target): IDSW relative to the zero-shot model, the others absolute
    ("IDSW change vs zero-shot (%)", "<= -70 %"),
    ("IDF1 (%)", "> 60"),
    ("HOTA (%)", "> 50"),
    ("MOTA (%)", ">= 80"),
)


def _find(rows: Iterable[Mapping[str, Any]], tracker: str, detections: str, class_name: str):
    for r in rows:
        if r["tracker"] == tracker and r["detections"] == detections and (
                r["class_name"] == class_name or r["status"] != "ok"):
            return r
    return None


def published_targets_table(rows: Sequence[Mapping[str, Any]], zero_shot: str = "trackssm-zero-shot",
                            final: str = "trackssm-phase2", detections: str | None = None,
                            combined: str = "combined_class_avg") -> list[dict[str, Any]]:
    """The published targets checked on ``final`` (IDSW also against ``zero_shot``): rows ``metric, tracker,
    detections, measured, target, met ('yes'|'no'|'n/a'), sequences, note``.

    ``detections``: the detection source to check on (None: ``noisy`` when present, else the first one);
    metrics from the combined row (``combined_class_avg``; IDSW is TrackEval's sum over the classes there).
    """
    sources = list(dict.fromkeys(r["detections"] for r in rows))
    if detections is None:
        detections = "noisy" if "noisy" in sources else (sources[0] if sources else "gt")
    label = COMBINED[combined]
    fin = _find(rows, final, detections, label)
    zs = _find(rows, zero_shot, detections, label)
    fin_ok = fin is not None and fin["status"] == "ok"
    zs_ok = zs is not None and zs["status"] == "ok"

    def note_of(r, name):
        if r is None:
            return f"{name} not in the comparison"
        return f"{name}: {r['reason']}" if r["status"] != "ok" else ""

    out = []
    for metric, target in PUBLISHED_TARGETS:
        measured, met, note = None, "n/a", note_of(fin, final)
        if metric.startswith("IDSW"):
            note = "; ".join(n for n in (note_of(fin, final), note_of(zs, zero_shot)) if n)
            if fin_ok and zs_ok:
                base, now = zs["IDSW"], fin["IDSW"]
                if base:
                    measured = 100.0 * (now - base) / base
                    met = "yes" if measured <= -70.0 else "no"
                    note = f"IDSW {int(now)} vs {int(base)} zero-shot"
                else:
                    note = f"zero-shot has no identity switches (final {int(now)})"
                    met = "yes" if now == 0 else "no"
        elif fin_ok:
            key = metric.split(" ")[0]
            measured = fin[key]
            limit = float(target.split(" ")[-1])
            if measured is not None:
                met = "yes" if (measured >= limit if target.startswith(">=") else measured > limit) else "no"
        seq = fin["sequences"] if fin is not None else (zs["sequences"] if zs is not None else None)
        out.append({"metric": metric, "tracker": final, "detections": detections,
                    "measured": None if measured is None else round(float(measured), 2), "target": target,
                    "met": met, "sequences": seq, "note": note})
    return out
