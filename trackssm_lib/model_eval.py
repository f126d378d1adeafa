"""Looking at trained TrackSSM models: training runs reused across reports, TensorBoard scalars, next-box error.

* :func:`train_or_reuse` runs :func:`trackssm_lib.training.train_main` unless the same training already finished
  in the same folder (then its summary is returned as it was) or stopped part-way (then it is resumed). "The same"
  means the same effective configuration (config file + overrides + data folder, ignoring keys that only change
  how fast or how verbosely it runs) and the same starting checkpoint file content (``init_checkpoint`` in phase 1,
  the phase-1 best checkpoint in phase 2). A marker ``<output_dir>/weights/phase<N>/reuse.json`` holds both.
* :func:`read_scalars` reads a run's TensorBoard scalars (``loss/train``, ``loss/val``, ``lr/<group>``) into
  arrays.
* :func:`next_box_error` scores next-box predictions on the official per-track samples of a split: for each
  sample (7 consecutive boxes ``b0..b6`` of one track) the model sees ``b0..b5`` and predicts ``b6``; the
  constant-velocity baseline predicts ``b5 + (b5 - b4)``. Scores are the IoU with ``b6`` and the distance between
  box centres in pixels (image size from each sequence's ``seqinfo.ini``), per class and over all samples.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from trackssm_lib.boxes import center_distance, paired_iou
from trackssm_lib.constants import CLASS_NAMES
from trackssm_lib.data import (HISTORY, camera_slot, default_splits, extract_track_samples, history_condition,
                               load_sequence, split_sequence_dirs)
from trackssm_lib.ego_motion import CAMERA_FILE, EGO_DIMS
from trackssm_lib.fileio import write_json_atomic
from trackssm_lib.model import TrackSSM, load_checkpoint
from trackssm_lib.records import file_sha256

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONSTANT_VELOCITY = "constant velocity"
REUSE_MARKER = "reuse.json"
# Keys that change how a run executes, not what it computes: they do not prevent reuse.
RUNTIME_KEYS = frozenset({"progress", "device", "num_threads", "num_workers", "stop_after_epoch", "backend",
                          "amp", "output_dir"})
PATH_KEYS = frozenset({"data", "mot17_root", "init_checkpoint", "phase1_checkpoint"})  # identified by content


# ---------------------------------------------------------------------------------------------- reuse
def _sha256(path: str | os.PathLike | None) -> str | None:
    return file_sha256(path) if path and Path(path).is_file() else None


def _jsonable(value: Any) -> Any:
    from trackssm_lib.records import to_jsonable

    return to_jsonable(value)


def resolve_mot17_root(path: str | os.PathLike | None) -> str | None:
    """``path`` (relative paths from the project root) when it holds MOTChallenge GT, else None (the fallback)."""
    if not path:
        return None
    p = Path(os.path.expanduser(str(path)))
    p = p if p.is_absolute() else PROJECT_ROOT / p
    return str(p.resolve()) if p.is_dir() else None


def effective_config(config_path: str | os.PathLike, data: str | os.PathLike,
                     overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The configuration :func:`train_main` will use (data folder and resolved splits included)."""
    from trackssm_lib.training import load_config

    cfg = load_config(config_path, overrides)
    cfg["data"] = str(data)
    train_split, val_split = default_splits(data)
    cfg["train_split"] = train_split if cfg["train_split"] == "auto" else cfg["train_split"]
    cfg["val_split"] = val_split if cfg["val_split"] == "auto" else cfg["val_split"]
    return cfg


def phase_paths(cfg: Mapping[str, Any]) -> dict[str, Path]:
    """Checkpoints, TensorBoard folder, log and reuse marker of the phase ``cfg`` describes."""
    from trackssm_lib.training import PHASES, REPO_ROOT

    out = Path(cfg["output_dir"]) if cfg.get("output_dir") else REPO_ROOT
    phase = int(cfg["phase"])
    phase_dir, stem, run_name = PHASES[phase]
    wdir = out / "weights" / phase_dir
    return {"root": out, "best": wdir / f"{stem}_best.pth", "last": wdir / f"{stem}_last.pth",
            "marker": wdir / REUSE_MARKER, "tensorboard": out / "runs" / run_name,
            "log": out / "logs" / f"phase{phase}_training.log", "phase0": out / "weights" / "phase0" /
            "phase0_pretrain.pth", "phase1_best": out / "weights" / "phase1" / "phase1_decoder_best.pth"}


def start_checkpoint(cfg: Mapping[str, Any]) -> Path | None:
    """The file a phase starts from: phase 1 ``init_checkpoint`` (None when phase 0 pretrains), phase 2 the
    phase-1 best checkpoint."""
    if int(cfg["phase"]) == 1:
        return Path(cfg["init_checkpoint"]) if cfg.get("init_checkpoint") else None
    return Path(cfg["phase1_checkpoint"]) if cfg.get("phase1_checkpoint") else phase_paths(cfg)["phase1_best"]


def folder_digest(folder: str | os.PathLike) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder`` (a dataset's identity by content)."""
    h = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + file_sha256(path).encode())
    return h.hexdigest()


def _fingerprint(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two trainings the same, by content (no path): the configuration, the export's identity, the
    pretraining data's digest and the starting checkpoint's sha256; a moved checkout or dataset keeps its trainings."""
    from trackssm_lib.export import export_identity

    start = start_checkpoint(cfg)
    config = {k: v for k, v in sorted(cfg.items()) if k not in RUNTIME_KEYS and k not in PATH_KEYS}
    config["data"] = export_identity(cfg["data"])
    if cfg.get("mot17_root"):
        config["mot17_root"] = folder_digest(cfg["mot17_root"])
    return {"config": _jsonable(config), "start_sha256": _sha256(start)}


def relocated_summary(summary: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """A recorded training summary with its paths inside the run's folder (whole values, or inside a sentence such as
    ``start``) re-anchored at ``root``: the folder (or the checkout holding it) was moved or copied since, and the
    summary must name the files where they are now.
    The recorded folder is the one above ``weights/<phase>/`` of its ``best_checkpoint``."""
    old = Path(summary["best_checkpoint"]).parents[2]
    root = Path(root)
    if old == root:
        return dict(summary)

    def moved(value: Any) -> Any:  # a path, or a sentence naming one ("phase 1 checkpoint <path>")
        if not isinstance(value, str):
            return value
        return str(root) if value == str(old) else value.replace(f"{old}{os.sep}", f"{root}{os.sep}")

    return {k: moved(v) for k, v in summary.items()}


def train_or_reuse(config_path: str | os.PathLike, data: str | os.PathLike, overrides: Sequence[str] = (),
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train (``train_main``), resume a stopped run of the same training, or reuse a finished one.

    Returns ``train_main``'s summary plus ``action`` ('trained' | 'resumed' | 'reused'). A finished run is reused
    only when its best checkpoint still exists and its marker matches (same effective configuration and the same
    starting checkpoint content); otherwise training starts from scratch (the TensorBoard run restarts at step 1).
    """
    from trackssm_lib.training import train_main

    cfg = effective_config(config_path, data, overrides)
    paths = phase_paths(cfg)
    fp = _fingerprint(cfg)
    marker = {}
    if paths["marker"].is_file():
        try:
            marker = json.loads(paths["marker"].read_text())
        except (OSError, ValueError):
            marker = {}
    same = marker.get("fingerprint") == fp
    say = log or (lambda _msg: None)
    if same and marker.get("status") == "finished" and paths["best"].is_file() and marker.get("summary"):
        say(f"reusing finished phase-{cfg['phase']} training in {paths['root']} (best checkpoint "
            f"{paths['best']}; same configuration and starting weights)")
        return {**relocated_summary(marker["summary"], paths["root"]), "action": "reused"}
    resume = same and paths["last"].is_file()
    if resume:
        say(f"resuming phase-{cfg['phase']} training from {paths['last']}")
    else:
        say(f"training phase {cfg['phase']} into {paths['root']}")
    write_json_atomic(paths["marker"], {"status": "started", "fingerprint": fp}, sort_keys=True)
    # not the same training (or nothing to resume): a new run replaces the folder's earlier one, as documented
    summary = train_main(config_path, data=data, overrides=overrides, resume=resume, overwrite=not resume)
    finished = summary["stop_reason"] in ("max_epochs", "early_stopped")
    write_json_atomic(paths["marker"], {"status": "finished" if finished else "stopped", "fingerprint": fp,
                                        "summary": _jsonable(summary)}, sort_keys=True)
    return {**summary, "action": "resumed" if resume else "trained"}


def training_overrides(output_dir: str | os.PathLike, epochs: int | None = None, device: str = "auto",
                       mot17_root: str | None = None, extra: Mapping[str, Any] | None = None) -> list[str]:
    """``key=value`` overrides for :func:`train_or_reuse` from notebook parameters (None values are left out).

    ``mot17_root`` is resolved with :func:`resolve_mot17_root` (absent folder: the documented fallback).
    """
    items: dict[str, Any] = {"output_dir": str(Path(output_dir).resolve()), "device": device, "progress": False}
    if epochs is not None:
        items["epochs"] = int(epochs)
    mot = resolve_mot17_root(mot17_root)
    if mot:
        items["mot17_root"] = mot
    items.update({k: v for k, v in (extra or {}).items() if v is not None})
    return [f"{k}={_yaml_value(v)}" for k, v in items.items()]


def _yaml_value(value: Any) -> str:
    """A value as ``--set`` text that YAML reads back as the same type (``1e-05`` would be a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.9e}"
    return json.dumps(value)


# ---------------------------------------------------------------------------------------------- TensorBoard
def read_scalars(run_dir: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Every scalar tag of a TensorBoard run folder: ``{tag: {"step": int array, "value": float array}}``.

    Repeated steps (a restarted run) keep the last value written.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"TensorBoard run folder {run_dir} does not exist")
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        last: dict[int, float] = {}
        for ev in acc.Scalars(tag):
            last[int(ev.step)] = float(ev.value)
        steps = np.array(sorted(last), dtype=np.int64)
        out[tag] = {"step": steps, "value": np.array([last[s] for s in steps], dtype=np.float64)}
    return out


def lr_groups(scalars: Mapping[str, Any]) -> list[str]:
    """Parameter-group names logged as ``lr/<group>``."""
    return sorted(t.split("/", 1)[1] for t in scalars if t.startswith("lr/"))


def configured_lrs(cfg: Mapping[str, Any]) -> dict[str, float]:
    """The configured (peak) learning rate of each parameter group of a phase."""
    if int(cfg["phase"]) == 1:
        return {"decoder": float(cfg["lr"])}
    return {"encoder": float(cfg["encoder_lr"]), "decoder": float(cfg["decoder_lr"])}


# ---------------------------------------------------------------------------------------------- samples
def split_samples(data_root: str | os.PathLike, split: str | None = None, length: int = 7) -> dict[str, Any]:
    """Official per-track samples of a split with each sample's image size.

    Returns ``boxes7 (S, 7, 4)`` (normalised cx, cy, w, h; b0..b6), ``class_ids (S,)``, ``camera_slots (S,)`` (the
    sequence's camera, :func:`~trackssm_lib.data.camera_slot`), ``width``/``height (S,)`` (pixels), ``split`` and
    ``sequences`` (count), and ``ego (S, 7, 6)``: the camera's motion into the frame of every box (read by ego-aware
    models; zeros for sequences without ``camera.csv``, counted in ``sequences_without_poses``). ``split`` None: the
    export's validation split. ``length`` > 7: runs of that many consecutive boxes instead (``boxes7`` is then
    ``(S, length, 4)``; :func:`rollout_box_error`).
    """
    data_root = Path(data_root)
    split = split or default_splits(data_root)[1]
    dirs = split_sequence_dirs(data_root, split)
    seqs = [load_sequence(d, ego=(d / CAMERA_FILE).is_file()) for d in dirs]
    boxes, cls, slots, width, height, egos = [], [], [], [], [], []
    for seq in seqs:
        b7, c, frames = extract_track_samples(seq.frames, seq.track_ids, seq.boxes, seq.class_ids, length=length,
                                              return_frames=True)
        boxes.append(b7)
        cls.append(c)
        egos.append(seq.ego[frames] if seq.ego is not None else np.zeros((*frames.shape, EGO_DIMS), np.float32))
        slots.append(np.full(len(c), camera_slot(seq.name), dtype=np.int64))
        width.append(np.full(len(c), seq.width, dtype=np.float64))
        height.append(np.full(len(c), seq.height, dtype=np.float64))
    if not boxes:
        boxes, cls, slots, width, height = [np.zeros((0, length, 4), np.float32)], [np.zeros(0, np.int64)], \
            [np.zeros(0, np.int64)], [np.zeros(0)], [np.zeros(0)]
        egos = [np.zeros((0, length, EGO_DIMS), np.float32)]
    return {"boxes7": np.concatenate(boxes), "class_ids": np.concatenate(cls), "camera_slots": np.concatenate(slots),
            "width": np.concatenate(width), "height": np.concatenate(height), "ego": np.concatenate(egos),
            "split": split, "sequences": len(seqs),
            "sequences_without_poses": sum(seq.ego is None for seq in seqs)}


def ego_input(samples: Mapping[str, Any], model: TrackSSM) -> np.ndarray | None:
    """The samples' ego motion for ``model`` (None for a model that does not read it); an ego-aware model on samples
    from sequences without camera poses raises ValueError instead of silently predicting for a standing camera."""
    if not getattr(model, "ego_aware", False):
        return None
    missing = int(samples.get("sequences_without_poses", 0))
    if samples.get("ego") is None or missing:
        raise ValueError(f"an ego-aware model reads the camera's motion, but {missing or 'all'} sequence(s) of split "
                         f"{samples.get('split')!r} have no {CAMERA_FILE} (re-export with `prepare`)")
    return np.asarray(samples["ego"])


def constant_velocity(boxes7: np.ndarray) -> np.ndarray:
    """The constant-velocity prediction of a sample's last box from the two before it: ``b5 + (b5 - b4)`` for
    ``(S, 7, 4)`` samples (normalised cx, cy, w, h)."""
    boxes7 = np.asarray(boxes7, dtype=np.float64)
    return 2.0 * boxes7[:, -2] - boxes7[:, -3]


def predict_next(model: TrackSSM, history: np.ndarray, class_ids: np.ndarray | None = None,
                 device: str | torch.device = "cpu", batch_size: int = 2048,
                 camera_slots: np.ndarray | None = None, ego: np.ndarray | None = None) -> np.ndarray:
    """The model's prediction of the box after ``history (S, L, 4)`` for every sample (eval mode, no gradients):
    the model reads the last 6 boxes (``b0..b5``, the official input); ``L`` < 6 raises ValueError.
    ``camera_slots``: each sample's camera, read by a camera-aware model with the class ids; ``ego (S, 6)``: the
    camera's motion into the predicted frame, read by an ego-aware model (None: no camera motion)."""
    history = np.asarray(history, dtype=np.float32)
    n_in = HISTORY + 1
    if history.ndim != 3 or history.shape[1] < n_in:
        raise ValueError(f"the model needs {n_in} boxes before the target, got shape {history.shape}")
    cond = history_condition(torch.as_tensor(history[:, -n_in:]))
    cls = None if class_ids is None else torch.as_tensor(np.asarray(class_ids, dtype=np.int64))
    if cls is not None and camera_slots is not None:
        cls = model.condition_ids(cls, torch.as_tensor(np.asarray(camera_slots, dtype=np.int64)))
    twist = None
    if ego is not None and getattr(model, "ego_aware", False):
        twist = torch.as_tensor(np.asarray(ego, dtype=np.float32)).reshape(len(cond), -1)
    was_training = model.training
    model.to(device).eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(cond), batch_size):
                c = cond[i:i + batch_size].to(device)
                k = None if cls is None else cls[i:i + batch_size].to(device)
                e = None if twist is None else twist[i:i + batch_size].to(device)
                out.append(model(c, k, e).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, 4))


def _to_xyxy_px(boxes: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    cx, cy, w, h = b[:, 0] * width, b[:, 1] * height, b[:, 2] * width, b[:, 3] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def box_errors(pred: np.ndarray, target: np.ndarray, width: np.ndarray,
               height: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and centre distance (px) of normalised (cx, cy, w, h) boxes; predicted sizes below 0 count as 0."""
    p, t = _to_xyxy_px(pred, width, height), _to_xyxy_px(target, width, height)
    p[:, 2] = np.maximum(p[:, 2], p[:, 0])
    p[:, 3] = np.maximum(p[:, 3], p[:, 1])
    return paired_iou(p, t), center_distance(p, t)


def next_box_error(samples: Mapping[str, Any], models: Mapping[str, TrackSSM | None],
                   device: str | torch.device = "cpu", use_class_ids: bool = True) -> list[dict[str, Any]]:
    """Next-box prediction error of each named model on the same samples (from :func:`split_samples`).

    ``models`` maps a display name to a TrackSSM, or to None for the constant-velocity baseline. Each sample's last
    box is the target, the boxes before it the history (a model reads the last 6 of them). Returns rows
    ``{model, class_name, n, mean_iou, mean_center_error_px, median_center_error_px}`` per class present (in class
    id order) and ``class_name='all'``.
    """
    boxes7, cls = np.asarray(samples["boxes7"]), np.asarray(samples["class_ids"], dtype=np.int64)
    width, height = np.asarray(samples["width"], float), np.asarray(samples["height"], float)
    target = boxes7[:, -1]
    rows = []
    for name, model in models.items():
        if model is None:
            pred = constant_velocity(boxes7)
        else:
            ego = ego_input(samples, model)
            pred = predict_next(model, boxes7[:, :-1], cls if use_class_ids else None, device=device,
                                camera_slots=samples.get("camera_slots"), ego=None if ego is None else ego[:, -1])
        iou, err = box_errors(pred, target, width, height)
        groups = [(CLASS_NAMES[c] if 0 <= c < len(CLASS_NAMES) else str(c), cls == c) for c in np.unique(cls)]
        for class_name, mask in groups + [("all", np.ones(len(cls), dtype=bool))]:
            n = int(mask.sum())
            rows.append({"model": name, "class_name": class_name, "n": n,
                         "mean_iou": float(iou[mask].mean()) if n else float("nan"),
                         "mean_center_error_px": float(err[mask].mean()) if n else float("nan"),
                         "median_center_error_px": float(np.median(err[mask])) if n else float("nan")})
    return rows


def rollout(model: TrackSSM | None, history: np.ndarray, class_ids: np.ndarray | None = None, steps: int = 1,
            device: str | torch.device = "cpu", camera_slots: np.ndarray | None = None,
            ego: np.ndarray | None = None) -> np.ndarray:
    """The tracker's prediction of a lost track over ``steps`` frames: ``history (S, L, 4)`` -> ``(S, steps, 4)``;
    ``ego (S, steps, 6)``: the camera's motion into each predicted frame (ego-aware models).

    Each prediction is appended to the history and the next one is made from the last 6 boxes, as
    :class:`~trackssm_lib.trackers.TrackSSMTracker` does while a track has no detection.
    ``model`` None: constant velocity from the last two boxes, ``b5 + k (b5 - b4)``.
    """
    window = np.asarray(history, dtype=np.float64)
    if model is None:
        velocity = window[:, -1] - window[:, -2]
        return window[:, -1, None] + velocity[:, None] * np.arange(1, steps + 1)[None, :, None]
    out = []
    for _ in range(steps):
        k = len(out)
        pred = predict_next(model, window, class_ids, device=device, camera_slots=camera_slots,
                            ego=None if ego is None else np.asarray(ego)[:, k])
        out.append(pred)
        window = np.concatenate([window[:, 1:], pred[:, None]], axis=1)
    return np.stack(out, axis=1) if out else np.zeros((len(window), 0, 4))


def rollout_box_error(runs: Mapping[str, Any], models: Mapping[str, TrackSSM | None], steps: int,
                      device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """Error of each model's :func:`rollout` after 1..``steps`` frames without detections, on runs of
    ``6 + steps`` consecutive boxes (:func:`split_samples` with ``length=6 + steps``): rows ``{model, step, n,
    mean_iou, mean_center_error_px}``. Every model predicts the same last ``steps`` boxes of each run.
    """
    boxes, cls = np.asarray(runs["boxes7"]), np.asarray(runs["class_ids"], dtype=np.int64)
    need = HISTORY + 1 + steps
    if boxes.ndim != 3 or boxes.shape[1] < need:
        raise ValueError(f"{steps} rollout steps need runs of {need} boxes, got shape {boxes.shape}")
    width, height = np.asarray(runs["width"], float), np.asarray(runs["height"], float)
    first = boxes.shape[1] - steps  # the first predicted box
    rows = []
    for name, model in models.items():
        ego = None if model is None else ego_input(runs, model)
        pred = rollout(model, boxes[:, :first], cls, steps, device, camera_slots=runs.get("camera_slots"),
                       ego=None if ego is None else np.asarray(ego)[:, first:])
        for k in range(steps):
            iou, err = box_errors(pred[:, k], boxes[:, first + k], width, height)
            rows.append({"model": name, "step": k + 1, "n": len(cls), "mean_iou": float(iou.mean()),
                         "mean_center_error_px": float(err.mean())})
    return rows


def phase_models(cfg: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The models compared after a phase: ``{role: {"label", "path"}}`` for roles ``start`` (phase 1: the phase-0
    weights or ``init_checkpoint``; phase 2: the phase-1 best checkpoint), ``trained`` (this phase's best
    checkpoint) and ``constant_velocity`` (path None)."""
    phase = int(cfg["phase"])
    if phase == 1:
        start = start_checkpoint(cfg) or phase_paths(cfg)["phase0"]
        start_label = "starting (init checkpoint)" if cfg.get("init_checkpoint") else "starting (phase 0)"
    else:
        start, start_label = start_checkpoint(cfg), "starting (phase 1 best)"
    return {"start": {"label": start_label, "path": str(start)},
            "trained": {"label": f"trained (phase {phase} best)", "path": str(summary["best_checkpoint"])},
            "constant_velocity": {"label": CONSTANT_VELOCITY, "path": None}}


def compare_models(models: Mapping[str, Mapping[str, Any]], samples: Mapping[str, Any],
                   device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """:func:`next_box_error` of :func:`phase_models`' models (loaded from their checkpoints); rows carry the
    ``label`` as ``model`` and the role as ``role``."""
    rows = []
    for role, m in models.items():
        model = None if m["path"] is None else load_model(m["path"], device)
        for row in next_box_error(samples, {m["label"]: model}, device=device):
            rows.append({"role": role, **row})
    return rows


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> TrackSSM:
    """A TrackSSM from a project or official checkpoint (or ``zoo:NAME``), on ``device``, in eval mode."""
    from trackssm_lib.zoo import resolve_checkpoint

    model = load_checkpoint(resolve_checkpoint(path))
    return model.to(device).eval()


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def summary_figures(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The key training facts of a ``train_or_reuse`` summary (for ``record_figures``)."""
    history = list(summary.get("history") or [])
    return {"action": summary.get("action"), "best_val_loss": summary.get("best_val_loss"),
            "best_epoch": summary.get("best_epoch"), "epochs_run": summary.get("epochs_run"),
            "last_epoch": summary.get("last_epoch"), "stop_reason": summary.get("stop_reason"),
            "start": summary.get("start"), "device": summary.get("device"),
            "train_loss": [h["train_loss"] for h in history], "val_loss": [h["val_loss"] for h in history]}


__all__ = [
    "CONSTANT_VELOCITY", "box_errors", "compare_models", "configured_lrs", "constant_velocity", "effective_config",
    "ego_input", "load_model", "lr_groups", "next_box_error", "phase_models", "phase_paths", "predict_next",
    "read_scalars", "resolve_device", "resolve_mot17_root", "split_samples", "start_checkpoint", "summary_figures",
    "train_or_reuse", "training_overrides",
]
