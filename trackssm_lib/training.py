"""Fine-tuning TrackSSM on prepared nuScenes sequences: phase 0 (starting weights), phase 1 and phase 2.

``python -m trackssm_lib train --config configs/nuscenes_phase1.yaml [--data DIR] [--set key=value ...]
[--resume | --overwrite]`` (also ``python -m trackssm_lib.training ...``; under ``torchrun`` the same command runs
DistributedDataParallel).

Runs on disk
------------
A phase writes ``<output_dir>/weights/phase<N>/<stem>_best.pth`` and ``..._last.pth``, ``runs/phase<N>_nuscenes/``
and ``logs/phase<N>_training.log``. A new run never replaces an earlier one silently: where the phase's best or last
checkpoint exists, ``train`` stops with :class:`RunExistsError` (exit 2) naming it, unless ``--resume`` continues
that run or ``--overwrite`` starts a new one (the earlier checkpoints are removed once the new run's data and start
weights have been read; its TensorBoard run restarts at epoch 1). On ``--resume`` only the settings of
:data:`RESUME_APPLIED` (epochs, patience, min_delta, stop_after_epoch and how the run executes) may differ from the
checkpoint's, and they are applied; any other change is refused with a ConfigError naming the key, the old and the
new value (start a new run with ``--overwrite`` or another ``output_dir``). Paths are compared by what they name
(:data:`PATH_KEYS`), so a moved checkout or export resumes. Ctrl-C keeps the last finished epoch's checkpoint and
prints the command that continues the run (:func:`interrupted_message`).

Every config key and what it accepts is in :data:`DEFAULTS` (types from the defaults and :data:`OPTIONAL_TYPES`,
ranges in :data:`MIN_VALUES`, ``device``: auto, cpu, cuda or cuda:N); a bad value stops :func:`load_config` with
the key, the file or ``--set`` item, and the accepted values named.

Phases
------
* **Phase 0 - starting weights** (phase 1 only, skipped on ``--resume``), first that applies:
  ``init_checkpoint`` (official or project file, loaded strictly with ``load_checkpoint``; a bad file stops the run);
  else a short pretraining of the whole official model on MOTChallenge pedestrian GT under ``mot17_root``;
  else (documented fallback) the same pretraining on the pedestrian (class 4) tracks of the prepared data's train
  split. Pretraining uses the official per-track samples, Adam at ``pretrain_lr``, ``pretrain_epochs`` epochs,
  augmentation as in training, no class ids (the class parameters stay zero, i.e. neutral). Its weights are saved
  to ``weights/phase0/phase0_pretrain.pth``.
* **Phase 1**: the encoder is frozen (``requires_grad`` False, bit-identical afterwards); the decoder (its output
  heads included) and the class parameters are trained with Adam at ``lr`` (one parameter group, ``decoder``).
* **Phase 2**: everything is trained from the phase-1 best checkpoint (``phase1_checkpoint``, default
  ``<output_dir>/weights/phase1/phase1_decoder_best.pth``) with two Adam groups: ``encoder`` at ``encoder_lr`` and
  ``decoder`` (decoder + class parameters) at ``decoder_lr``.

Each phase-1/2 step takes ``batch_size`` windows (see :mod:`trackssm_lib.data`), turns them into the official
per-track samples (target = the frame after the window) and minimises the official loss (``TrackSSM.loss``).
``giou_weight`` > 0 adds the scale-free ``1 - GIoU`` term of the official SportsMOT setting to every head; phase 0
always uses the official MOT17 loss. ``box_coder: relative`` trains the project's size-relative box output (see
:mod:`trackssm_lib.model.decoder`); a start checkpoint trained with another coder keeps every weight but its
heads' output layers, which start at zero. ``delta_gain`` G > 1 trains the encoder's embedding of the 4 displacement
inputs G times faster (``TrackSSM.set_delta_gain``, a reparametrisation: checkpoints hold the ordinary weights).
``short_history_prob`` p > 0 gives a share p of the training samples as the tracker builds them for young tracks
(fewer than 5 rows, padded at the end; :func:`trackssm_lib.data.young_track_condition`), which full-history training
never shows the model. ``camera_aware: true`` (a project option) adds the camera
parameters (``TrackSSM(num_cameras=6)``, zero-initialised, trained with the decoder group) and feeds every sample's
camera with its class id (:meth:`TrackSSM.condition_ids`; flipped windows get the mirrored camera, see
:mod:`trackssm_lib.data`); a start checkpoint without camera parameters starts them at zero. ``ego_aware: true``
(a project option) adds the ego parameters (``TrackSSM(ego_aware=True)``: an MLP whose last layer starts at zero,
trained with the decoder group) and feeds every sample the camera's motion into its target frame, read from the
export's ``camera.csv`` (mirrored with flipped windows); a start checkpoint without them starts them at zero.
Phase 0 trains neither the class nor the ego parameters (MOTChallenge data has neither).

Learning-rate schedule (per optimiser step, the same factor for every group): linear warm-up from
``1/warmup_steps`` to 1 over the first ``warmup_epochs`` epochs, a plateau at 1 until ``decay_start`` x
``epochs`` (a fraction of the maximum number of epochs, default 0.5), then a half-cosine decay to
``min_lr_ratio`` at the last step of epoch ``epochs``. Early stopping may end the run before or during the decay.

Early stopping: after every epoch the loss on the validation split (``mini_val`` / ``val``, never augmented) is
computed; an epoch whose loss is not below ``best - min_delta`` counts as bad; ``patience`` bad epochs in a row stop
the run. The best epoch is saved as ``*_best.pth``; every epoch also writes ``*_last.pth`` (model, optimiser,
scheduler, epoch, early-stopping state, RNG states of python/numpy/torch and the config) for ``--resume``. Data
order (``DistributedSampler`` seeded by ``seed`` and the epoch) and augmentation (seeded by seed, epoch and item)
depend only on the epoch, so a resumed run reaches the same weights as an uninterrupted one.

A non-finite loss stops the run at once with :class:`TrainingError`; the optimiser step is not taken and the last
checkpoint written (the previous epoch's ``*_last.pth``) is left untouched.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import random
import re
import shlex
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from trackssm_lib.constants import CAMERAS
from trackssm_lib.data import (
    HISTORY,
    PEDESTRIAN_CLASS_ID,
    SampleDataset,
    WindowDataset,
    collate_windows,
    default_splits,
    load_mot_samples,
    load_split,
    sequences_to_samples,
    windows_to_samples,
)
from trackssm_lib.model import CheckpointError, TrackSSM, load_checkpoint, read_checkpoint, save_checkpoint
from trackssm_lib.model.decoder import check_box_coder
from trackssm_lib.model.mamba import BACKENDS
from trackssm_lib.model.trackssm import fold_camera
from trackssm_lib.nuscenes_db import DataError
from trackssm_lib.zoo import resolve_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULTS: dict[str, Any] = {
    "phase": 1,                    # 1 (frozen encoder) or 2 (everything)
    "seed": 0,
    "data": None,                  # prepared export folder (``--data`` overrides)
    "train_split": "auto",         # auto: train (trainval export) or mini_train
    "val_split": "auto",           # auto: val or mini_val
    "output_dir": None,            # None: the repository root
    "sequence_length": 20,         # history frames per window (T)
    "num_queries": 300,            # max tracks per window (N)
    "window_stride": 1,            # frames between consecutive training windows of a sequence
    "val_window_stride": 1,
    "batch_size": 16,              # windows per optimiser step (per process under DDP)
    "val_batch_size": 64,          # windows per validation batch
    "epochs": 40,                  # maximum number of epochs
    "patience": 7,                 # early stopping (bad epochs in a row)
    "min_delta": 0.0,
    "lr": 1.0e-4,                  # phase 1 (group 'decoder')
    "encoder_lr": None,            # phase 2 group 'encoder'
    "decoder_lr": None,            # phase 2 group 'decoder' (decoder + class parameters)
    "weight_decay": 0.0,
    "warmup_epochs": 5,
    "decay_start": 0.5,            # fraction of `epochs` where the cosine decay starts
    "min_lr_ratio": 0.01,          # lr factor reached at the end of the decay
    "grad_clip": 1.0,              # max global grad norm (0/None: off)
    "flip_prob": 0.5,              # training augmentation
    "jitter": 0.05,
    "giou_weight": 0.0,            # weight of the 1 - GIoU term per head (0: the official MOT17 loss; SportsMOT: 1)
    "delta_gain": 1.0,             # Adam moves the encoder's displacement-input weights this many times faster
    "short_history_prob": 0.0,     # share of training tracks given as young tracks (fewer rows, padded as the tracker)
    "camera_aware": False,         # camera parameters: the model also reads which of the 6 cameras sees the track
    "ego_aware": False,            # ego parameters: the model also reads the camera's own motion (camera.csv)
    "init_checkpoint": None,       # phase 0, option 1: official/project checkpoint or zoo:NAME
    "mot17_root": None,            # phase 0, option 2: MOTChallenge GT folder
    "mot17_frame_step": 1,
    "pretrain_epochs": 5,          # phase 0 pretraining (options 2 and 3)
    "pretrain_lr": 1.0e-4,
    "pretrain_batch_size": 2048,
    "pretrain_max_batches": None,  # cap per pretraining epoch (tests / smoke runs)
    "phase1_checkpoint": None,     # phase 2 start (None: <output_dir>/weights/phase1/phase1_decoder_best.pth; zoo:NAME)
    "num_classes": 7,
    "output_sigmoid": False,
    "box_coder": "absolute",       # absolute (official) | relative (heads output size-relative box changes)
    "backend": "auto",             # model backend: auto | torch | mamba_ssm
    "device": "auto",              # auto | cpu | cuda | cuda:N
    "amp": True,                   # torch.autocast mixed precision on CUDA (bf16 if supported, else fp16 + scaler)
    "num_threads": None,           # torch CPU threads (None: cores / local processes)
    "num_workers": 0,              # DataLoader workers
    "max_train_batches": None,     # cap per epoch (tests / smoke runs)
    "max_val_batches": None,
    "stop_after_epoch": None,      # end this invocation after that epoch (time-limited jobs; continue with --resume)
    "fault_nan_at_step": None,     # testing: replace the loss of that global step (1-based) by NaN
    "progress": True,              # tqdm bars
}

PHASES = {1: ("phase1", "phase1_decoder", "phase1_nuscenes"), 2: ("phase2", "phase2_full", "phase2_nuscenes")}


class ConfigError(ValueError):
    """A bad configuration file or ``--set`` override (the message names the key and the file)."""


class ResumeConflictError(ConfigError):
    """``--resume`` with a setting the resumed run cannot apply (the message names the key, old and new value)."""


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, nothing to resume, ...)."""


# ------------------------------------------------------------------------------------------------- config
FLOAT_KEYS = frozenset({k for k, v in DEFAULTS.items() if isinstance(v, float)} | {"encoder_lr", "decoder_lr"})
# The type of a set value of every key whose default is None (None, YAML ``null``, means "not set" for these).
OPTIONAL_TYPES: dict[str, type] = {
    "data": str, "output_dir": str, "init_checkpoint": str, "mot17_root": str, "phase1_checkpoint": str,
    "encoder_lr": float, "decoder_lr": float, "pretrain_max_batches": int, "num_threads": int,
    "max_train_batches": int, "max_val_batches": int, "stop_after_epoch": int, "fault_nan_at_step": int,
}
assert set(OPTIONAL_TYPES) == {k for k, v in DEFAULTS.items() if v is None}, "every None default needs a type"
NULLABLE = frozenset(OPTIONAL_TYPES) | {"grad_clip"}  # grad_clip: None (or 0) turns clipping off
# Keys whose null is refused later with their own message (the rule for their numbers).
_NULL_CHECKED_LATER = frozenset({"giou_weight", "delta_gain", "short_history_prob"})
CHOICES: dict[str, tuple[Any, ...]] = {"phase": tuple(PHASES), "backend": BACKENDS}
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N (N: a GPU index)"
# Smallest allowed value of integer keys (None, where allowed, is not compared).
MIN_VALUES: dict[str, int] = {
    "batch_size": 1, "val_batch_size": 1, "epochs": 1, "num_queries": 1, "pretrain_batch_size": 1,
    "window_stride": 1, "val_window_stride": 1, "mot17_frame_step": 1, "max_train_batches": 1,
    "max_val_batches": 1, "pretrain_max_batches": 1, "num_threads": 1, "stop_after_epoch": 1, "num_workers": 0,
}


def _key_type(key: str) -> type | None:
    """The Python type a value of ``key`` must have (None: any)."""
    if key in FLOAT_KEYS:
        return float
    return OPTIONAL_TYPES.get(key, type(DEFAULTS[key]) if DEFAULTS[key] is not None else None)


def expected_values(key: str) -> str:
    """What ``key`` accepts, in words, for error messages (e.g. ``int >= 1 or null``)."""
    if key == "device":
        return DEVICE_CHOICES
    if key in CHOICES:
        return "one of " + ", ".join(str(c) for c in CHOICES[key])
    kind = _key_type(key)
    text = {bool: "bool (true or false)", int: "int", float: "float", str: "str"}.get(kind, "any value")
    if key in MIN_VALUES:
        text += f" >= {MIN_VALUES[key]}"
    return text + (" or null" if key in NULLABLE else "")


def valid_device(value: str) -> bool:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    return value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value) is not None


def _check_type(key: str, value: Any, where: str) -> Any:
    """``value`` of ``key`` as the config stores it (``1e-3`` text read as a float); ConfigError naming ``where``,
    the key and what it accepts otherwise."""
    if value is None:
        if key in NULLABLE or key in _NULL_CHECKED_LATER:
            return None
        raise ConfigError(f"{where}: config key {key!r} expects {expected_values(key)}, got null")
    kind = _key_type(key)
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot, no signed exponent) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: config key {key!r} expects {expected_values(key)}, got {value!r}")
        return float(value)
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}.get(kind, lambda v: True)
    if not ok(value):
        raise ConfigError(f"{where}: config key {key!r} expects {expected_values(key)}, got {value!r}")
    if key == "device" and not valid_device(value):
        raise ConfigError(f"{where}: config key 'device' must be {DEVICE_CHOICES}, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{where}: config key {key!r} must be {expected_values(key)}, got {value!r}")
    if key in MIN_VALUES and value < MIN_VALUES[key]:
        raise ConfigError(f"{where}: config key {key!r} must be >= {MIN_VALUES[key]}, got {value!r}")
    return value


def _parse_override(item: str) -> tuple[str, Any]:
    """``key=value`` of ``--set`` -> (key, value as the config stores it); ConfigError naming the item, the key and
    what it accepts. Values are read as YAML (empty: null); a number given to a text key (a folder named ``2024``)
    is kept as the text typed."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. epochs=10)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in DEFAULTS:
        raise ConfigError(f"--set {item!r}: unknown config key {key!r} (known keys: {', '.join(sorted(DEFAULTS))})")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: the value of config key {key!r} is not valid YAML (expected "
                          f"{expected_values(key)}; {exc})") from exc
    if _key_type(key) is str and value is not None and not isinstance(value, (str, dict, list)):
        value = raw.strip()
    return key, _check_type(key, value, f"--set {item!r}")


def load_config(config_path: str | os.PathLike | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Defaults <- YAML file <- ``key=value`` overrides (values parsed as YAML).

    Every error is a ConfigError naming the file or ``--set`` item, the key and the values it accepts: an unknown
    key, a value of the wrong type (:func:`expected_values`), a value outside its choices or range."""
    cfg = dict(DEFAULTS)
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys, got {type(loaded).__name__}")
        for key, value in loaded.items():
            if key not in DEFAULTS:
                raise ConfigError(f"{path}: unknown config key {key!r} (known keys: {', '.join(sorted(DEFAULTS))})")
            cfg[key] = _check_type(key, value, str(path))
    for item in overrides or ():
        key, value = _parse_override(item)
        cfg[key] = value
    if cfg["phase"] not in PHASES:
        raise ConfigError(f"config key 'phase' must be 1 or 2, got {cfg['phase']!r}")
    if cfg["phase"] == 2 and (cfg["encoder_lr"] is None or cfg["decoder_lr"] is None):
        raise ConfigError("phase 2 needs config keys 'encoder_lr' and 'decoder_lr'")
    for key in ("batch_size", "val_batch_size", "epochs", "sequence_length", "num_queries", "pretrain_batch_size"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, got {cfg[key]!r}")
    try:  # the decoder's own rules, so that a bad value fails before any data is read
        check_box_coder(cfg["box_coder"], bool(cfg["output_sigmoid"]))
    except ValueError as exc:
        raise ConfigError(f"config keys 'box_coder' / 'output_sigmoid': {exc}") from exc
    if cfg["delta_gain"] is None or not (math.isfinite(cfg["delta_gain"]) and cfg["delta_gain"] > 0):
        raise ConfigError(f"config key 'delta_gain' must be a finite number > 0, got {cfg['delta_gain']!r}")
    if cfg["giou_weight"] is None or not (math.isfinite(cfg["giou_weight"]) and cfg["giou_weight"] >= 0):
        raise ConfigError(f"config key 'giou_weight' must be a finite number >= 0, got {cfg['giou_weight']!r}")
    for key in ("camera_aware", "ego_aware"):
        if not isinstance(cfg[key], bool):
            raise ConfigError(f"config key {key!r} must be true or false, got {cfg[key]!r}")
    if cfg["short_history_prob"] is None or not 0.0 <= cfg["short_history_prob"] <= 1.0:
        raise ConfigError(f"config key 'short_history_prob' must lie in [0, 1], got {cfg['short_history_prob']!r}")
    if int(cfg["sequence_length"]) < HISTORY + 1:
        raise ConfigError(f"config key 'sequence_length' must be >= {HISTORY + 1} (the official history needs "
                          f"{HISTORY + 1} boxes), got {cfg['sequence_length']}")
    return cfg


# ------------------------------------------------------------------------------------------ distributed
def _check_cuda(device: str) -> None:
    """ConfigError when ``device`` (``cuda`` or ``cuda:N``) names no CUDA device of this machine."""
    if not torch.cuda.is_available():
        raise ConfigError(f"config key 'device' is {device!r}, but torch sees no CUDA device on this machine "
                          f"(use auto or cpu)")
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"config key 'device' is {device!r}, but this machine has {count} CUDA device(s) "
                          f"(cuda:0 .. cuda:{count - 1})")


class _Dist:
    """Process-group facts (a single process when not launched by torchrun)."""

    def __init__(self, device_pref: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        if device_pref == "auto":
            device = f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"
        elif device_pref == "cuda" and self.world > 1:
            device = f"cuda:{self.local_rank}"
        else:
            device = device_pref
        if device.startswith("cuda"):
            _check_cuda(device)
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.initialised_here = False
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            self.initialised_here = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def ddp(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.ddp:
            torch.distributed.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        if self.ddp:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        if self.initialised_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class _LossModule(nn.Module):
    """``forward`` = the model's training loss (``TrackSSM.loss``), so that DistributedDataParallel synchronises its
    gradients."""

    def __init__(self, model: TrackSSM, giou_weight: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.giou_weight = float(giou_weight)

    def forward(self, inputs: torch.Tensor, class_ids: torch.Tensor | None, target: torch.Tensor,
                ego: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.loss(inputs, class_ids, target, self.giou_weight, ego=ego)


def _training_samples(batch: dict[str, Any],
                      cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(inputs, class ids, targets, ego) of a window batch for :class:`_LossModule`; with ``camera_aware`` the class
    ids carry the camera (``class + num_classes x slot``, :meth:`TrackSSM.condition_ids`); ``ego`` is the camera's
    motion into each target frame with ``ego_aware`` ((S, 6)), else None."""
    s = windows_to_samples(batch)
    ids = s["class_ids"]
    if cfg["camera_aware"]:
        ids = fold_camera(ids, s["camera_slots"], int(cfg["num_classes"]))
    return s["condition"], ids, s["target"], (s["ego"] if cfg["ego_aware"] else None)


# ------------------------------------------------------------------------------------------------ helpers
def lr_factor(step: int, total_steps: int, warmup_steps: int, decay_from: int, min_ratio: float) -> float:
    """The schedule of the module docstring: linear warm-up -> plateau -> half-cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step < decay_from or total_steps <= decay_from:
        return 1.0
    progress = min(1.0, (step - decay_from) / max(1, total_steps - 1 - decay_from))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"python": list(random.getstate()), "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                                                           int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _setup_logger(path: Path | None, main: bool) -> logging.Logger:
    logger = logging.getLogger(f"trackssm_lib.training.{id(path)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if main and path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path, mode="a", encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(fh)
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(sh)
    else:
        logger.addHandler(logging.NullHandler())
    return logger


def _close_logger(logger: logging.Logger) -> None:
    for h in list(logger.handlers):
        h.close()
        logger.removeHandler(h)


class _Context:
    """Everything one training phase needs: device, DDP, AMP, logging."""

    def __init__(self, cfg: dict[str, Any], dist: _Dist, logger: logging.Logger) -> None:
        self.cfg, self.dist, self.log = cfg, dist, logger
        self.device = dist.device
        self.amp_dtype: torch.dtype | None = None
        if cfg["amp"] and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.global_step = 0

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def make_scaler(self):
        return torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)


def _tqdm(iterable: Any, ctx: _Context, desc: str, total: int | None = None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                disable=not (ctx.cfg["progress"] and ctx.dist.main))


def _wrap(model: TrackSSM, ctx: _Context, **loss_options: Any) -> nn.Module:
    """The model's loss (``loss_options``: :class:`_LossModule`'s keywords), in DDP when distributed."""
    module = _LossModule(model, **loss_options)
    if ctx.dist.ddp:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)
    return module


def _train_step(loss_module: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any, params: list[nn.Parameter],
                ctx: _Context, condition: torch.Tensor, class_ids: torch.Tensor | None, target: torch.Tensor,
                where: str, last_good: str, ego: torch.Tensor | None = None) -> float:
    """One optimiser step; a non-finite loss (on any process) raises TrainingError before the step is taken."""
    ctx.global_step += 1
    with ctx.autocast():
        loss = loss_module(condition.to(ctx.device), None if class_ids is None else class_ids.to(ctx.device),
                           target.to(ctx.device), None if ego is None else ego.to(ctx.device))
    if ctx.cfg["fault_nan_at_step"] is not None and ctx.global_step == int(ctx.cfg["fault_nan_at_step"]):
        loss = loss * float("nan")
    value = float(loss.detach())
    if ctx.dist.sum([0.0 if math.isfinite(value) else 1.0])[0] > 0:
        raise TrainingError(f"non-finite training loss ({value}) at {where}, global step {ctx.global_step}: "
                            f"training stopped; the last good checkpoint is kept: {last_good}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if ctx.cfg["grad_clip"]:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, float(ctx.cfg["grad_clip"]))
    scaler.step(optimizer)
    scaler.update()
    return value


def _window_loader(ds: WindowDataset, cfg: dict[str, Any], dist: _Dist, train: bool) -> DataLoader:
    if train:
        sampler: Any = DistributedSampler(ds, num_replicas=dist.world, rank=dist.rank, shuffle=True,
                                          seed=int(cfg["seed"]), drop_last=False)
    else:  # exact shards without the duplicates DistributedSampler would add
        sampler = list(range(dist.rank, len(ds), dist.world))
    return DataLoader(ds, batch_size=int(cfg["batch_size"] if train else cfg["val_batch_size"]), sampler=sampler,
                      collate_fn=collate_windows, num_workers=int(cfg["num_workers"]),
                      persistent_workers=False)


def _capped(loader: Any, cap: Any) -> tuple[Iterable, int]:
    n = len(loader) if cap is None else min(len(loader), int(cap))
    def gen():
        for i, batch in enumerate(loader):
            if i >= n:
                break
            yield batch
    return gen(), n


# ---------------------------------------------------------------------------------------------- phase 0
def _context_params(model: TrackSSM) -> list[nn.Parameter]:
    """The class and ego parameters (inputs that phase 0's MOTChallenge samples do not have)."""
    params = [model.class_embedding.weight]
    if model.ego_aware:
        params += list(model.ego_encoder.parameters())
    return params


def _pretrain(model: TrackSSM, cfg: dict[str, Any], ctx: _Context, data_root: Path | None, train_split: str | None,
              out: Path) -> str:
    """Phase 0 pretraining (MOT17 pedestrians, else the export's pedestrian tracks); returns a description."""
    if cfg["mot17_root"]:
        boxes7, cls, names = load_mot_samples(Path(cfg["mot17_root"]), frame_step=int(cfg["mot17_frame_step"]))
        source = f"MOTChallenge pedestrian GT {cfg['mot17_root']} ({len(names)} sequences)"
    else:
        seqs = load_split(data_root, train_split, classes=[PEDESTRIAN_CLASS_ID])
        boxes7, cls = sequences_to_samples(seqs)
        source = (f"fallback: pedestrian tracks of {data_root}/{train_split} ({len(seqs)} sequences; no "
                  f"init_checkpoint and no mot17_root given)")
    if len(boxes7) == 0:
        raise TrainingError(f"phase 0: no pretraining samples in {source}")
    ctx.log.info("phase 0: pretraining on %d samples from %s, %d epochs", len(boxes7), source,
                 int(cfg["pretrain_epochs"]))
    ds = SampleDataset(boxes7, cls, train=True, flip_prob=float(cfg["flip_prob"]), jitter=float(cfg["jitter"]),
                       seed=int(cfg["seed"]))
    base = DistributedSampler(ds, num_replicas=ctx.dist.world, rank=ctx.dist.rank, shuffle=True,
                              seed=int(cfg["seed"]))
    loader = DataLoader(ds, sampler=BatchSampler(base, int(cfg["pretrain_batch_size"]), drop_last=False),
                        batch_size=None, num_workers=int(cfg["num_workers"]))
    context = _context_params(model)  # no class ids or ego motion in phase 0: those parameters stay neutral
    for p in context:
        p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(cfg["pretrain_lr"]))
    scaler = ctx.make_scaler()
    loss_module = _wrap(model, ctx)
    model.train()
    for epoch in range(int(cfg["pretrain_epochs"])):
        ds.set_epoch(epoch)
        base.set_epoch(epoch)
        batches, n = _capped(loader, cfg["pretrain_max_batches"])
        total, count = 0.0, 0
        for batch in _tqdm(batches, ctx, f"phase0 {epoch + 1}/{cfg['pretrain_epochs']}", n):
            total += _train_step(loss_module, optimizer, scaler, params, ctx, batch["condition"], None,
                                 batch["target"], f"phase 0 epoch {epoch + 1}", "none (phase 0)")
            count += 1
        ctx.log.info("phase 0 epoch %d: loss %.6f", epoch + 1, total / max(count, 1))
    for p in context:
        p.requires_grad_(True)
    del loss_module, optimizer  # release the phase-0 DDP reducer before phase 1 wraps the model again
    gc.collect()
    if ctx.dist.main:
        save_checkpoint(out / "weights" / "phase0" / "phase0_pretrain.pth", model, phase=0, source=source,
                        epochs=int(cfg["pretrain_epochs"]))
    ctx.dist.barrier()
    return source


# ---------------------------------------------------------------------------------------------- phases 1/2
def _evaluate(loss_module: nn.Module, loader: DataLoader, ctx: _Context) -> float:
    """Mean per-sample validation loss over all processes (each evaluates its own shard, no DDP wrapper)."""
    loss_module = getattr(loss_module, "module", loss_module)  # shards differ in length: no collectives inside
    loss_module.eval()
    total, count = 0.0, 0.0
    batches, n = _capped(loader, ctx.cfg["max_val_batches"])
    with torch.no_grad():
        for batch in _tqdm(batches, ctx, "val", n):
            inputs, class_ids, target, ego = _training_samples(batch, ctx.cfg)
            m = len(target)
            if m == 0:
                continue
            with ctx.autocast():
                loss = loss_module(inputs.to(ctx.device), class_ids.to(ctx.device), target.to(ctx.device),
                                   None if ego is None else ego.to(ctx.device))
            total += float(loss) * m
            count += m
    loss_module.train()
    total, count = ctx.dist.sum([total, count])
    return total / count if count else float("nan")


def _param_groups(model: TrackSSM, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.")]
    decoder = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    if cfg["phase"] == 1:
        for p in encoder:
            p.requires_grad_(False)
        for p in decoder:
            p.requires_grad_(True)
        return [{"params": decoder, "lr": float(cfg["lr"]), "name": "decoder"}]
    for p in model.parameters():
        p.requires_grad_(True)
    return [{"params": encoder, "lr": float(cfg["encoder_lr"]), "name": "encoder"},
            {"params": decoder, "lr": float(cfg["decoder_lr"]), "name": "decoder"}]


def _reset_note(model: TrackSSM) -> str:
    """Log text for a start checkpoint trained with another box coder (its output layers were zeroed)."""
    if not model.checkpoint_info["box_outputs_reset"]:  # type: ignore[attr-defined]
        return ""
    return f" (trained with another box coder: output layers zeroed for box_coder={model.box_coder})"


def _build_model(cfg: dict[str, Any]) -> TrackSSM:
    """The model the config describes, with its displacement-input gain set (before any weights are loaded)."""
    model = TrackSSM(num_classes=int(cfg["num_classes"]), output_sigmoid=bool(cfg["output_sigmoid"]),
                     backend=str(cfg["backend"]), box_coder=str(cfg["box_coder"]),
                     num_cameras=len(CAMERAS) if cfg["camera_aware"] else 0, ego_aware=bool(cfg["ego_aware"]))
    model.set_delta_gain(float(cfg["delta_gain"]))
    return model


def _data_root(cfg: dict[str, Any], data: str | os.PathLike | None) -> Path:
    if data is not None:
        cfg["data"] = str(data)
    if not cfg["data"]:
        raise ConfigError("no data folder: pass --data DIR or set config key 'data'")
    data_root = Path(cfg["data"])
    if not data_root.is_dir():
        raise FileNotFoundError(f"data folder {data_root} does not exist (run `python -m trackssm_lib prepare` "
                                f"first, or pass --data)")
    return data_root


def pretrain_main(config_path: str | os.PathLike | None, data: str | os.PathLike | None = None,
                  overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Phase 0 alone (as phase 1 runs it without ``init_checkpoint``): ``<output_dir>/weights/phase0/...``.

    Not resumable within itself: an interrupted phase 0 starts again (it is minutes, not hours)."""
    cfg = load_config(config_path, overrides)
    data_root = _data_root(cfg, data)
    train_split = default_splits(data_root)[0] if cfg["train_split"] == "auto" else cfg["train_split"]
    out = Path(cfg["output_dir"]) if cfg["output_dir"] else REPO_ROOT
    dist = _Dist(str(cfg["device"]))
    torch.set_num_threads(int(cfg["num_threads"] or max(1, (os.cpu_count() or 1) // max(1, dist.local_world))))
    logger = _setup_logger(out / "logs" / "phase0_training.log", dist.main)
    try:
        ctx = _Context(cfg, dist, logger)
        seed_everything(int(cfg["seed"]))
        t0 = time.time()
        source = _pretrain(_build_model(cfg).to(ctx.device), cfg, ctx, data_root, train_split, out)
        return {"phase": 0, "source": source, "epochs": int(cfg["pretrain_epochs"]),
                "seconds": round(time.time() - t0, 3),
                "checkpoint": str(out / "weights" / "phase0" / "phase0_pretrain.pth")}
    finally:
        _close_logger(logger)
        dist.close()


# ------------------------------------------------------------------------------------------ runs on disk
class RunExistsError(FileExistsError):
    """``train`` without ``--resume`` or ``--overwrite`` where a run of the phase already left a checkpoint."""


def run_checkpoints(cfg: dict[str, Any]) -> tuple[Path, Path]:
    """(best, last) checkpoint paths of the phase ``cfg`` describes, under its ``output_dir`` (None: the
    repository root): ``weights/phase<N>/<stem>_best.pth`` and ``..._last.pth``."""
    out = Path(cfg["output_dir"]) if cfg["output_dir"] else REPO_ROOT
    phase_dir, stem, _ = PHASES[int(cfg["phase"])]
    return out / "weights" / phase_dir / f"{stem}_best.pth", out / "weights" / phase_dir / f"{stem}_last.pth"


def check_start(best_path: Path, last_path: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run over an earlier one: RunExistsError naming the checkpoint found and both flags
    when ``best_path`` or ``last_path`` exists and neither ``resume`` nor ``overwrite`` is set; ConfigError when both
    are set."""
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: --resume continues the run in output_dir, "
                          "--overwrite replaces it with a new one")
    if resume or overwrite:
        return
    found = [p for p in (last_path, best_path) if p.is_file()]
    if found:
        raise RunExistsError(f"an earlier run's checkpoint exists: {found[0]}; pass --resume to continue that run, "
                             f"or --overwrite to start a new run that replaces it (or set another output_dir)")


def _discard_earlier_run(paths: Sequence[Path], logger: logging.Logger) -> None:
    """``--overwrite``: remove the earlier run's checkpoints, so that an interrupted new run never leaves them to be
    taken for its own (idempotent)."""
    for path in paths:
        if path.is_file():
            path.unlink()
            logger.info("overwrite: removed the earlier run's %s", path)


# ----------------------------------------------------------------------------------------- resume policy
# A resumed run continues the checkpoint's weights, optimiser, schedule position, early-stopping state and RNG
# states. Only these settings may differ from the ones the checkpoint was trained with; the resumed run applies them
# (the value: what it changes). Every other key (learning rates and schedule shape, batch sizes and caps, data and
# splits, windows, augmentation, loss, model options, seed, starting weights, phase 0 settings) would make the
# resumed run another run than the one whose state it continues: a change is refused with a ConfigError naming the
# key, the checkpoint's value and the new one (start a new run with --overwrite or another output_dir).
RESUME_APPLIED: dict[str, str] = {
    "epochs": "the maximum number of epochs; the rest of the learning-rate schedule is recomputed for it (the decay "
              "ends at the new last epoch)",
    "patience": "early stopping from now on (a run stopped early continues while its bad epochs are fewer)",
    "min_delta": "which later epochs count as an improvement",
    "stop_after_epoch": "where this invocation ends",
    "device": "where it runs", "amp": "mixed precision on CUDA", "backend": "the Mamba implementation (same weights)",
    "num_threads": "CPU threads", "num_workers": "DataLoader workers", "progress": "progress bars",
    "output_dir": "where the run lies (a moved folder)", "fault_nan_at_step": "testing",
}
# Path keys compared by what they name (a moved checkout or dataset is the same run): the export by its identity
# (trackssm_lib.export.export_identity), checkpoints by sha256, the MOTChallenge folder by its files' digest.
PATH_KEYS = ("data", "init_checkpoint", "phase1_checkpoint", "mot17_root")


def path_identity(key: str, value: Any) -> str | None:
    """What the path key ``key`` (:data:`PATH_KEYS`) names, by content; None when unset or unreadable."""
    if not value:
        return None
    try:
        if key == "data":
            from trackssm_lib.export import export_identity

            return "export:" + export_identity(value)
        if key == "mot17_root":
            from trackssm_lib.model_eval import folder_digest

            return "folder:" + folder_digest(value) if Path(value).is_dir() else None
        if str(value).startswith("zoo:"):  # shipped weights, verified against the zoo index when loaded
            return str(value)
        from trackssm_lib.records import file_sha256

        return "sha256:" + file_sha256(value) if Path(value).is_file() else None
    except (OSError, ValueError, DataError):
        return None


def _same_value(old: Any, new: Any) -> bool:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)) \
            and not isinstance(old, bool) and not isinstance(new, bool):
        return float(old) == float(new)
    return old == new


def _same_target(key: str, old: str, new: str, identities: dict[str, Any]) -> bool:
    """Whether the path key ``key`` names the same thing as when the checkpoint was written: the same path, or the
    same content elsewhere; the export is always compared by content (it may have been prepared again in place)."""
    before = identities.get(key)
    if before is None and old != new:
        before = path_identity(key, old)  # a checkpoint written before identities were stored
    if key == "data" and before is not None:
        return before == path_identity(key, new)
    return old == new or (before is not None and before == path_identity(key, new))


def resume_conflicts(saved: dict[str, Any], identities: dict[str, Any],
                     cfg: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, checkpoint's value, new value) of every setting that ``cfg`` changes and a resume may not change
    (:data:`RESUME_APPLIED`). ``saved``: the checkpoint's config (a key it lacks had its default);
    ``identities``: the checkpoint's :func:`path_identity` values of :data:`PATH_KEYS` (paths are compared by what
    they name)."""
    out = []
    for key, new in cfg.items():
        old = saved.get(key, DEFAULTS.get(key))
        if key in RESUME_APPLIED:
            continue
        same = _same_target(key, old, new, identities) if key in PATH_KEYS and old and new else \
            _same_value(old, new)
        if not same:
            out.append((key, old, new))
    return out


def resume_changes(saved: dict[str, Any], cfg: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The applied settings (:data:`RESUME_APPLIED`) that ``cfg`` changes: {key: (old, new)}."""
    return {k: (saved.get(k, DEFAULTS[k]), cfg[k]) for k in RESUME_APPLIED
            if not _same_value(saved.get(k, DEFAULTS[k]), cfg[k])}


def _resume_state(last_path: Path, phase: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` of the phase's last checkpoint, checked: TrainingError when there is none, CheckpointError when
    it is not a phase-``phase`` last checkpoint, ResumeConflictError listing every refused change
    (:func:`resume_conflicts`)."""
    if not last_path.is_file():
        raise TrainingError(f"--resume: no checkpoint to resume from at {last_path}")
    state = dict(read_checkpoint(last_path).meta.get("extra") or {})
    if state.get("phase") != phase or "optimizer" not in state:
        raise CheckpointError(f"{last_path}: not a phase-{phase} last checkpoint (cannot resume)")
    conflicts = resume_conflicts(dict(state.get("config") or {}), dict(state.get("identities") or {}), cfg)
    if conflicts:
        changes = "; ".join(f"{k}: {new!r} holds other content than when the checkpoint was written" if old == new
                            else f"{k}: {old!r} in the checkpoint, {new!r} now" for k, old, new in conflicts)
        raise ResumeConflictError(f"--resume: {last_path} was trained with other settings ({changes}); a resumed "
                                  f"run can only change {', '.join(RESUME_APPLIED)}. Resume with the checkpoint's "
                                  f"values, or start a new run with --overwrite or another output_dir")
    return state


def train_main(config_path: str | os.PathLike | None, data: str | os.PathLike | None = None,
               overrides: Sequence[str] = (), resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run phase 1 or 2 (as the config says) and return a summary dict (paths, losses, epochs, stop reason).

    ``resume``: continue the phase's last checkpoint (settings checked by :func:`resume_conflicts`). Otherwise a new
    run starts, which an earlier run's best or last checkpoint under ``output_dir`` refuses (RunExistsError) unless
    ``overwrite``: then the earlier checkpoints are removed once the new run's data and start weights are read."""
    cfg = load_config(config_path, overrides)
    data_root = _data_root(cfg, data)
    train_split, val_split = default_splits(data_root)
    train_split = train_split if cfg["train_split"] == "auto" else cfg["train_split"]
    val_split = val_split if cfg["val_split"] == "auto" else cfg["val_split"]
    cfg.update(train_split=train_split, val_split=val_split)
    out = Path(cfg["output_dir"]) if cfg["output_dir"] else REPO_ROOT
    phase = int(cfg["phase"])
    _, _, run_name = PHASES[phase]
    best_path, last_path = run_checkpoints(cfg)
    check_start(best_path, last_path, resume, overwrite)  # before anything is written
    resume_state = _resume_state(last_path, phase, cfg) if resume else None
    identities = dict(resume_state.get("identities") or {}) if resume_state else {}
    identities = identities or {k: path_identity(k, cfg[k]) for k in PATH_KEYS}

    dist = _Dist(str(cfg["device"]))
    threads = cfg["num_threads"] or max(1, (os.cpu_count() or 1) // max(1, dist.local_world))
    torch.set_num_threads(int(threads))
    logger = _setup_logger(out / "logs" / f"phase{phase}_training.log", dist.main)
    writer = None
    try:
        ctx = _Context(cfg, dist, logger)
        # data first: a missing split fails before any training
        train_seqs = load_split(data_root, train_split, ego=bool(cfg["ego_aware"]))
        val_seqs = load_split(data_root, val_split, ego=bool(cfg["ego_aware"]))
        train_ds = WindowDataset(train_seqs, int(cfg["sequence_length"]), int(cfg["num_queries"]),
                                 int(cfg["window_stride"]), train=True, flip_prob=float(cfg["flip_prob"]),
                                 jitter=float(cfg["jitter"]), seed=int(cfg["seed"]),
                                 short_history_prob=float(cfg["short_history_prob"]))
        val_ds = WindowDataset(val_seqs, int(cfg["sequence_length"]), int(cfg["num_queries"]),
                               int(cfg["val_window_stride"]), train=False)
        if len(train_ds) == 0 or len(val_ds) == 0:
            raise TrainingError(f"no training windows in {data_root}/{train_split} ({len(train_ds)}) or "
                                f"{data_root}/{val_split} ({len(val_ds)})")

        seed_everything(int(cfg["seed"]))
        model = _build_model(cfg)
        start_source = None
        earlier = (best_path, last_path) if overwrite and dist.main else ()
        if resume:
            load_checkpoint(last_path, model)
            start_source = f"resumed from {last_path}"
        elif phase == 1:
            if cfg["init_checkpoint"]:
                load_checkpoint(resolve_checkpoint(cfg["init_checkpoint"]), model,
                                reset_box_outputs_on_coder_change=True)
                start_source = f"init_checkpoint {cfg['init_checkpoint']}" + _reset_note(model)
            else:
                _discard_earlier_run(earlier, logger)  # before the minutes of phase 0
                start_source = "phase 0: " + _pretrain(model.to(ctx.device), cfg, ctx, data_root, train_split, out)
        else:
            p1 = Path(resolve_checkpoint(cfg["phase1_checkpoint"])) if cfg["phase1_checkpoint"] else \
                out / "weights" / "phase1" / "phase1_decoder_best.pth"
            if not p1.is_file():
                raise CheckpointError(f"{p1}: phase-1 best checkpoint not found (run phase 1 first or set "
                                      f"phase1_checkpoint)")
            load_checkpoint(p1, model, reset_box_outputs_on_coder_change=True)
            start_source = f"phase 1 checkpoint {p1}" + _reset_note(model)
        _discard_earlier_run(earlier, logger)  # after the start weights were read (they may lie beside them)
        model.to(ctx.device).train()

        groups = _param_groups(model, cfg)
        params = [p for g in groups for p in g["params"]]
        optimizer = torch.optim.Adam(groups, weight_decay=float(cfg["weight_decay"]))
        train_loader = _window_loader(train_ds, cfg, dist, train=True)
        val_loader = _window_loader(val_ds, cfg, dist, train=False)
        epochs = int(cfg["epochs"])
        spe = len(train_loader) if cfg["max_train_batches"] is None else min(len(train_loader),
                                                                              int(cfg["max_train_batches"]))
        total_steps = epochs * spe
        warmup_steps = int(round(float(cfg["warmup_epochs"]) * spe))
        decay_from = max(warmup_steps, int(round(float(cfg["decay_start"]) * total_steps)))
        ratio = float(cfg["min_lr_ratio"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, decay_from, ratio))
        scaler = ctx.make_scaler()
        loss_module = _wrap(model, ctx, giou_weight=float(cfg["giou_weight"]))

        start_epoch, best, best_epoch, bad, history, stopped = 0, float("inf"), 0, 0, [], False
        if resume_state is not None:
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
            start_epoch = int(resume_state["epoch"])
            best, best_epoch = float(resume_state["best_val_loss"]), int(resume_state["best_epoch"])
            bad, history = int(resume_state["bad_epochs"]), list(resume_state.get("history", []))
            stopped = bad >= int(cfg["patience"])  # the checkpoint's early stop, or a later one with a new patience
            ctx.global_step = int(resume_state.get("global_step", 0))
            set_rng_states(resume_state["rng"])
            changed = resume_changes(dict(resume_state.get("config") or {}), cfg)
            if changed:
                logger.info("resume: applying changed settings %s", changed)

        encoder_before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("encoder.")} \
            if phase == 1 else None
        if dist.main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(out / "runs" / run_name), purge_step=start_epoch + 1)
        n_trainable = sum(p.numel() for p in params if p.requires_grad)
        logger.info("phase %d: start from %s; device %s (amp %s, %d process(es), %d threads); %d train windows "
                    "(%s), %d val windows (%s); %d trainable parameters; groups %s; epochs %d..%d",
                    phase, start_source, ctx.device, ctx.amp_dtype, dist.world, torch.get_num_threads(),
                    len(train_ds), train_split, len(val_ds), val_split, n_trainable,
                    {g["name"]: g["lr"] for g in groups}, start_epoch + 1, epochs)

        reason = "early_stopped" if stopped else ("max_epochs" if start_epoch >= epochs else None)
        epoch = start_epoch
        while reason is None:
            epoch += 1
            t0 = time.time()
            train_ds.set_epoch(epoch)
            train_loader.sampler.set_epoch(epoch)
            batches, n = _capped(train_loader, cfg["max_train_batches"])
            total, count = 0.0, 0
            last_good = str(last_path) if last_path.is_file() else "none yet (no epoch completed)"
            for batch in _tqdm(batches, ctx, f"phase{phase} epoch {epoch}/{epochs}", n):
                inputs, class_ids, target, ego = _training_samples(batch, cfg)
                total += _train_step(loss_module, optimizer, scaler, params, ctx, inputs, class_ids, target,
                                     f"phase {phase} epoch {epoch}", last_good, ego)
                scheduler.step()
                count += 1
            train_loss = dist.sum([total, count])
            train_loss = train_loss[0] / max(train_loss[1], 1)
            val_loss = _evaluate(loss_module, val_loader, ctx)
            if not math.isfinite(val_loss):
                raise TrainingError(f"non-finite validation loss ({val_loss}) after phase {phase} epoch {epoch}: "
                                    f"training stopped; the last good checkpoint is kept: {last_good}")
            lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
            improved = val_loss < best - float(cfg["min_delta"])
            if improved:
                best, best_epoch, bad = val_loss, epoch, 0
            else:
                bad += 1
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": lrs,
                            "seconds": round(time.time() - t0, 3)})
            if bad >= int(cfg["patience"]):
                reason = "early_stopped"
            elif epoch >= epochs:
                reason = "max_epochs"
            elif cfg["stop_after_epoch"] is not None and epoch >= int(cfg["stop_after_epoch"]):
                reason = "stop_after_epoch"
            if dist.main:
                if improved:
                    save_checkpoint(best_path, model, phase=phase, epoch=epoch, val_loss=val_loss, config=cfg)
                save_checkpoint(last_path, model, phase=phase, epoch=epoch, best_val_loss=best,
                                best_epoch=best_epoch, bad_epochs=bad, early_stopped=reason == "early_stopped",
                                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                global_step=ctx.global_step, rng=rng_states(), config=cfg, history=history,
                                identities=identities)
                writer.add_scalar("loss/train", train_loss, epoch)
                writer.add_scalar("loss/val", val_loss, epoch)
                for name, lr in lrs.items():
                    writer.add_scalar(f"lr/{name}", lr, epoch)
                writer.flush()
            dist.barrier()
            logger.info("phase %d epoch %d/%d: train %.6f val %.6f (best %.6f @ %d, bad %d/%d) lr %s %.1fs",
                        phase, epoch, epochs, train_loss, val_loss, best, best_epoch, bad, int(cfg["patience"]),
                        {k: f"{v:.3g}" for k, v in lrs.items()}, time.time() - t0)
        if reason == "early_stopped" and epoch > start_epoch:
            logger.info("phase %d: early stopping after epoch %d (no improvement for %d epochs)", phase, epoch, bad)

        if encoder_before is not None:  # phase 1 promise: the encoder is untouched
            changed = [n for n, p in model.named_parameters() if n in encoder_before
                       and not torch.equal(p.detach(), encoder_before[n])]
            if changed:
                raise TrainingError(f"phase 1 changed frozen encoder parameters: {changed[:5]}")
        summary = {"phase": phase, "stop_reason": reason, "epochs_run": epoch - start_epoch, "last_epoch": epoch,
                   "best_epoch": best_epoch, "best_val_loss": best, "best_checkpoint": str(best_path),
                   "last_checkpoint": str(last_path), "tensorboard": str(out / "runs" / run_name),
                   "log_file": str(out / "logs" / f"phase{phase}_training.log"), "start": start_source,
                   "device": str(ctx.device), "world_size": dist.world, "history": history}
        logger.info("phase %d done: %s", phase, json.dumps({k: v for k, v in summary.items() if k != "history"}))
        return summary
    finally:
        if writer is not None:
            writer.close()
        _close_logger(logger)
        dist.close()


# --------------------------------------------------------------------------------------------------- CLI
def train_command(args: argparse.Namespace) -> int:
    """The ``train`` subcommand (argument parsing lives in ``trackssm_lib.cli``)."""
    try:
        summary = train_main(args.config, data=args.data, overrides=args.overrides, resume=args.resume,
                             overwrite=getattr(args, "overwrite", False))
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return 0


def command_line(args: argparse.Namespace, resume: bool, overwrite: bool = False) -> str:
    """The ``train`` command of ``args`` (same --config, --data and --set items, in order) with ``--resume`` or
    ``--overwrite`` as asked, quoted for a POSIX shell."""
    parts = ["python", "-m", "trackssm_lib", "train", "--config", str(args.config)]
    if args.data is not None:
        parts += ["--data", str(args.data)]
    if args.overrides:
        parts += ["--set", *args.overrides]
    parts += ["--resume"] if resume else (["--overwrite"] if overwrite else [])
    return shlex.join(parts)


def interrupted_message(args: argparse.Namespace) -> str:
    """What ``train`` prints on Ctrl-C: the kept checkpoint of the last finished epoch and the exact command that
    continues the run (``--resume``), or, when no epoch finished, the command that starts it again."""
    try:
        cfg = load_config(args.config, args.overrides)
        _, last = run_checkpoints(cfg)
    except (OSError, ValueError):
        last = None
    if last is not None and last.is_file():
        return (f"interrupted: the checkpoint of the last finished epoch is kept ({last}); continue the run with\n"
                f"  {command_line(args, resume=True)}")
    return ("interrupted before an epoch finished: no checkpoint to resume from; start again with\n"
            f"  {command_line(args, resume=False, overwrite=bool(getattr(args, 'overwrite', False)))}")


def main(argv: list[str] | None = None) -> int:
    """``python -m trackssm_lib.training ARGS`` == ``python -m trackssm_lib train ARGS`` (handy under torchrun)."""
    from trackssm_lib.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    return cli_main(argv if argv[:1] == ["train"] else ["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
