"""Reading and writing TrackSSM checkpoints (official and project formats), strictly.

Formats read:

* official (Xavier-Lin/TrackSSM, DiffMOT): ``{'ddpm': state_dict, 'epoch': int, 'optimizer': ...}`` with keys
  prefixed ``module.`` (DataParallel); it has no class parameters;
* project: ``{'format': 'trackssm-nuscenes/1', 'model': state_dict, 'config': {...}, 'extra': {...}}``;
* a bare state_dict (either key style).

Every official key must be present with its exact shape and nothing unknown may appear; otherwise a
``CheckpointError`` lists the offending names and shapes and names the file. The one tolerated difference, written
out explicitly below, is that official files lack ``class_embedding.*``: those keep the model's current values
(zeros when freshly built), which leaves the model computing the official function. Likewise a file trained
without cameras lacks ``camera_embedding.*`` (the project's ``num_cameras`` option): loaded into a camera-aware
model (the start of such a fine-tuning) those keep their zeros, and a file trained without the ego input lacks
``ego_encoder.*`` (the ``ego_aware`` option), whose last layer then keeps its zeros.

Project files written before the option ``history`` was removed store ``"history": 5`` in their config (the shipped
``zoo/*.pth`` among them): :func:`read_checkpoint` drops that key, since every model now reads the official 5 boxes,
and refuses a file that stores any other value (:data:`REMOVED_OPTIONS`).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trackssm_lib.data import HISTORY
from trackssm_lib.model.trackssm import CAMERA_PREFIX, CLASS_PREFIX, EGO_PREFIX, TrackSSM

PROJECT_FORMAT = "trackssm-nuscenes/1"
OFFICIAL_PREFIX = "module."
# Model options that left the code: config key -> (the only value still served, the last commit that has the option).
REMOVED_OPTIONS: dict[str, tuple[Any, str]] = {"history": (HISTORY, "192a296")}


class CheckpointError(ValueError):
    """A file that is not a TrackSSM checkpoint, or one whose tensors do not match the model."""


@dataclass
class CheckpointContents:
    """What a checkpoint file holds, normalised: state_dict without ``module.``, its format and metadata."""

    path: Path
    format: str  # "official", "project" or "state_dict"
    state_dict: dict[str, Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _describe(t: Any) -> str:
    return f"{tuple(t.shape)}" if isinstance(t, Tensor) else type(t).__name__


def _strip_module(sd: dict[str, Any]) -> dict[str, Any]:
    return {(k[len(OFFICIAL_PREFIX):] if k.startswith(OFFICIAL_PREFIX) else k): v for k, v in sd.items()}


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(isinstance(k, str) for k in obj) \
        and all(isinstance(v, Tensor) for v in obj.values())


def _without_removed_options(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the keys of removed options (:data:`REMOVED_OPTIONS`) whose stored value is the one the
    code still serves; any other stored value raises ``CheckpointError`` naming the file."""
    config = dict(config)
    for key, (served, commit) in REMOVED_OPTIONS.items():
        if key not in config:
            continue
        value = config.pop(key)
        if isinstance(value, bool) or value != served:
            raise CheckpointError(f"{path}: checkpoint trained with {key}={value!r}; the project option {key!r} was "
                                  f"removed (the model now always uses {key}={served!r}); commit {commit} is the "
                                  f"last that has it and can load this file")
    return config


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu",
                    weights_only: bool = True) -> CheckpointContents:
    """Load ``path`` and identify its format; raises ``CheckpointError`` naming the file if it is not one, or if
    its config stores a removed option at a value the code no longer serves (:data:`REMOVED_OPTIONS`; the key is
    dropped from ``config`` otherwise).

    ``weights_only=True`` (default) refuses arbitrary pickled objects; pass False only for trusted files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # torch.load raises many types on non-checkpoints (UnpicklingError, KeyError, ...)
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict) and obj.get("format") == PROJECT_FORMAT:
        if not _is_state_dict(obj.get("model")):
            raise CheckpointError(f"{path}: project checkpoint without a 'model' state_dict")
        meta = {k: v for k, v in obj.items() if k not in ("model", "config")}
        config = _without_removed_options(path, dict(obj.get("config") or {}))
        return CheckpointContents(path, "project", dict(obj["model"]), config, meta)
    if isinstance(obj, dict) and "ddpm" in obj:
        if not _is_state_dict(obj["ddpm"]):
            raise CheckpointError(f"{path}: official checkpoint whose 'ddpm' entry is not a state_dict")
        meta = {k: v for k, v in obj.items() if k not in ("ddpm", "optimizer")}
        return CheckpointContents(path, "official", _strip_module(obj["ddpm"]), {}, meta)
    if _is_state_dict(obj):
        return CheckpointContents(path, "state_dict", _strip_module(obj), {}, {})
    keys = sorted(map(str, obj))[:10] if isinstance(obj, dict) else []
    raise CheckpointError(f"{path}: not a TrackSSM checkpoint (expected a dict with 'ddpm' (official) or "
                          f"format={PROJECT_FORMAT!r} (project); got {type(obj).__name__}"
                          + (f" with keys {keys}" if keys else "") + ")")


def match_state_dict(model: TrackSSM, state_dict: dict[str, Tensor], path: str | os.PathLike,
                     class_params_required: bool, camera_params_required: bool = True,
                     ego_params_required: bool = True) -> dict[str, Tensor]:
    """Check ``state_dict`` against ``model`` and return the complete dict to load with ``strict=True``.

    Missing, unexpected or mis-shaped keys raise ``CheckpointError``. Class parameters may be absent only when
    ``class_params_required`` is False (official files), camera parameters only when ``camera_params_required`` is
    False (files trained without cameras), ego parameters only when ``ego_params_required`` is False (files trained
    without the ego input); they then keep the model's current values.
    """
    expected = model.state_dict()
    tolerated = (() if class_params_required else (CLASS_PREFIX,)) + \
        (() if camera_params_required else (CAMERA_PREFIX,)) + (() if ego_params_required else (EGO_PREFIX,))
    missing = [k for k in expected if k not in state_dict and not k.startswith(tolerated)]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [k for k in state_dict if k in expected and (not isinstance(state_dict[k], Tensor)
                                                              or state_dict[k].shape != expected[k].shape)]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append("missing keys: " + ", ".join(f"{k} {_describe(expected[k])}" for k in missing))
        if unexpected:
            parts.append("unexpected keys: " + ", ".join(f"{k} {_describe(state_dict[k])}" for k in unexpected))
        if mis_shaped:
            parts.append("shape mismatches: " + ", ".join(
                f"{k} file {_describe(state_dict[k])} vs model {_describe(expected[k])}" for k in mis_shaped))
        raise CheckpointError(f"{path}: checkpoint does not match the TrackSSM model; " + "; ".join(parts))
    full = dict(state_dict)
    # The only tolerated gaps: an official file has no class parameters, a file trained without cameras no camera
    # parameters, one trained without the ego input no ego parameters -> keep the model's (initial) values.
    for k, v in expected.items():
        if tolerated and k.startswith(tolerated) and k not in full:
            full[k] = v
    return full


def checkpoint_box_coder(contents: CheckpointContents) -> str:
    """The box coder the file's weights were trained with (official files and older project files: absolute)."""
    return str(contents.config.get("box_coder", "absolute"))


def load_checkpoint(path: str | os.PathLike, model: TrackSSM | None = None, map_location: Any = "cpu",
                    weights_only: bool = True, reset_box_outputs_on_coder_change: bool = False,
                    **model_kwargs: Any) -> TrackSSM:
    """Load an official or project checkpoint into ``model`` (built from the file's config when None).

    ``model_kwargs`` override the stored config when building (e.g. ``output_sigmoid=True``, ``backend``).
    Loading into a ``model`` whose box coder differs from the file's is refused (its output layers would mean
    something else), unless ``reset_box_outputs_on_coder_change``: then every other weight is kept and the heads'
    output layers are zeroed (with the relative coder: "the box stays where it is"), the start of a fine-tuning.
    Returns the model; ``model.checkpoint_info`` records the file, its format and metadata (epoch, ...).
    """
    contents = read_checkpoint(path, map_location=map_location, weights_only=weights_only)
    if model is None:
        config = {**contents.config, **model_kwargs}
        try:
            model = TrackSSM(**config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{contents.path}: cannot build TrackSSM from its config {config}: {exc}") from exc
    file_coder = checkpoint_box_coder(contents)
    coder_changed = model.box_coder != file_coder
    if coder_changed and not reset_box_outputs_on_coder_change:
        raise CheckpointError(f"{contents.path}: weights trained with box_coder={file_coder!r} cannot be used by a "
                              f"model with box_coder={model.box_coder!r} (use box_coder={file_coder!r}, or "
                              f"fine-tune from these weights with their output layers reset)")
    full = match_state_dict(model, contents.state_dict, contents.path,
                            class_params_required=contents.format == "project",
                            camera_params_required=int(contents.config.get("num_cameras", 0) or 0) > 0,
                            ego_params_required=bool(contents.config.get("ego_aware", False)))
    model.load_state_dict(full, strict=True)
    if coder_changed:
        model.ssm_decoder.zero_box_outputs()
    model.checkpoint_info = {  # type: ignore[attr-defined]
        "path": str(contents.path), "format": contents.format, "meta": contents.meta,
        "class_params_loaded": any(k.startswith(CLASS_PREFIX) for k in contents.state_dict),
        "box_outputs_reset": coder_changed,
    }
    return model


def _atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _cpu_state(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in sd.items()}


def save_checkpoint(path: str | os.PathLike, model: TrackSSM, **extra: Any) -> Path:
    """Write the project format atomically (temp file in the same folder + ``os.replace``).

    ``extra`` (epoch, metrics, optimizer state, ...) is stored under ``'extra'``; it must be torch-loadable
    with ``weights_only=True`` (tensors, numbers, strings, lists, dicts).
    """
    obj = {"format": PROJECT_FORMAT, "model": _cpu_state(model.state_dict()), "config": dict(model.config),
           "extra": extra}
    return _atomic_save(obj, path)


def save_official_checkpoint(path: str | os.PathLike, model: TrackSSM, epoch: int = 0,
                             optimizer: dict[str, Any] | None = None) -> Path:
    """Write the official format (``{'ddpm': {'module.' + key: tensor}, 'epoch', 'optimizer'}``), no class params."""
    if model.box_coder != "absolute":
        raise CheckpointError(f"{path}: the official format has no config, so it can only hold the official "
                              f"absolute-box model (this one has box_coder={model.box_coder!r}); use "
                              f"save_checkpoint")
    if model.num_cameras:
        raise CheckpointError(f"{path}: the official format has no camera parameters (this model has "
                              f"num_cameras={model.num_cameras}); use save_checkpoint")
    if model.ego_aware:
        raise CheckpointError(f"{path}: the official format has no ego-motion parameters (this model is ego-aware); "
                              f"use save_checkpoint")
    sd = {OFFICIAL_PREFIX + k: v for k, v in _cpu_state(model.official_state_dict()).items()}
    return _atomic_save({"ddpm": sd, "epoch": int(epoch), "optimizer": optimizer or {}}, path)
