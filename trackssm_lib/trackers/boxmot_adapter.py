"""Optional BoxMOT trackers (ByteTrack, BoT-SORT, OC-SORT; no ReID) behind the common ``update`` interface.

BoxMOT is AGPL-3.0 and therefore an optional extra (``pip install -e ".[boxmot]"``, which pins boxmot 19.0.0, the
last release that works with numpy < 2). It is imported only when such a tracker is created. Settings:

* ReID is off (``with_reid=False``): appearance weights cannot be downloaded here, and the comparison is about
  motion and association on the same boxes.
* BoT-SORT's camera-motion compensation is off (``cmc_method=None``): trackers receive boxes, not images (12 Hz
  sweeps have none), and ECC on a blank frame would only cost time.
* ``per_class=True`` over the project's 7 classes, so that, like the project's trackers, a car never takes over a
  pedestrian's identity; the lost-track buffers scale with the frame rate as BoxMOT does for 30 Hz defaults.

BoxMOT's ``update(dets (N, 6), img)`` returns rows ``x1, y1, x2, y2, id, conf, cls, det_ind``, the column order of
:data:`trackssm_lib.trackers.association.TRACK_COLUMNS`. With ``per_class=True`` BoxMOT 19 may give tracks of two
classes the same id; the adapter numbers each (BoxMOT id, class) pair as its own track (1, 2, ... in order of first
output), so a result file never has an id that changes class (the evaluation refuses one). The classes are scored
separately, so the metrics are the same either way.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from trackssm_lib.constants import CLASS_NAMES

BOXMOT_TRACKERS = {"bytetrack": "ByteTrack", "botsort": "BotSort", "ocsort": "OcSort"}  # our name -> class
BOXMOT_VERSION = "19.0.0"
TRACKER_SETTINGS: dict[str, dict[str, Any]] = {  # BoxMOT keyword arguments that differ from its defaults
    "bytetrack": {},
    "botsort": {"with_reid": False, "cmc_method": None},
    "ocsort": {},
}


class TrackerUnavailableError(ValueError):
    """An optional tracker whose package is not installed, or an unknown BoxMOT tracker name."""


def import_boxmot():
    """``boxmot.trackers``, or a clear error with the install command."""
    try:
        return importlib.import_module("boxmot.trackers")
    except ImportError as exc:
        raise TrackerUnavailableError(
            f"BoxMOT trackers need the optional package boxmot (AGPL-3.0), which is not installed: "
            f"run `pip install boxmot=={BOXMOT_VERSION}` or `pip install -e \".[boxmot]\"` ({exc})") from exc


def boxmot_key(name: str) -> str:
    """'ByteTrack', 'oc-sort' ... -> the project's key, or a clear error."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BOXMOT_TRACKERS:
        raise TrackerUnavailableError(f"unknown BoxMOT tracker {name!r}; choose one of {sorted(BOXMOT_TRACKERS)}")
    return key


@contextlib.contextmanager
def quiet_boxmot_info() -> Iterator[None]:
    """Hide the INFO line of settings BoxMOT logs for every tracker it builds (one per sequence); keep warnings."""
    boxmot_logger = logging.getLogger("boxmot")
    level = boxmot_logger.level
    boxmot_logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        boxmot_logger.setLevel(level)


class BoxMOTTracker:
    """Adapter: ``BoxMOTTracker('bytetrack', frame_rate=12, image_size=(1600, 900))``; ``update(dets) -> (M, 8)``."""

    def __init__(self, name: str, frame_rate: float = 30.0, image_size: tuple[int, int] = (1600, 900),
                 **kwargs: Any) -> None:
        key = boxmot_key(name)
        trackers = import_boxmot()
        cls = getattr(trackers, BOXMOT_TRACKERS[key], None)
        if cls is None:
            raise TrackerUnavailableError(f"this boxmot has no trackers.{BOXMOT_TRACKERS[key]}; "
                                          f"install boxmot=={BOXMOT_VERSION}")
        wanted = {"frame_rate": int(round(frame_rate)), "per_class": True, "nr_classes": len(CLASS_NAMES),
                  **TRACKER_SETTINGS[key], **kwargs}
        params = inspect.signature(cls).parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        with quiet_boxmot_info():
            self.tracker = cls(**{k: v for k, v in wanted.items() if accepts_any or k in params})
        self.name = key
        self._img = np.zeros((int(image_size[1]), int(image_size[0]), 3), dtype=np.uint8)
        self._ids: dict[tuple[int, int], int] = {}  # (BoxMOT id, class) -> this adapter's track id

    def update(self, dets: np.ndarray) -> np.ndarray:
        dets = np.asarray(dets, dtype=np.float32).reshape(-1, 6)
        out = np.asarray(self.tracker.update(dets, self._img), dtype=np.float64)
        if out.size == 0:
            return np.zeros((0, 8))
        out = out.reshape(len(out), -1)[:, :8].copy()
        pairs = zip(out[:, 4].astype(np.int64).tolist(), out[:, 6].astype(np.int64).tolist())
        out[:, 4] = [self._ids.setdefault(pair, len(self._ids) + 1) for pair in pairs]
        return out
