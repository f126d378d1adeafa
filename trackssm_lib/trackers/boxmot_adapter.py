"""Optional BoxMOT trackers (ByteTrack, BoT-SORT, OC-SORT; no ReID) behind the common ``update`` interface.

BoxMOT is AGPL-3.0 and not a dependency: install it yourself with ``pip install boxmot==19.0.0``. It is imported
only when such a tracker is created. BoxMOT's ``update(dets (N, 6), img)`` already returns rows
``x1, y1, x2, y2, id, conf, cls, det_ind``, the column order of
:data:`trackssm_lib.trackers.association.TRACK_COLUMNS`.
"""
from __future__ import annotations

import importlib
import inspect

import numpy as np

BOXMOT_TRACKERS = {  # our name -> candidate class names across BoxMOT versions
    "bytetrack": ("ByteTrack", "BYTETracker"),
    "botsort": ("BotSort", "BoTSORT"),
    "ocsort": ("OcSort", "OCSort", "OCSORT"),
}
BOXMOT_VERSION = "19.0.0"


class TrackerUnavailableError(ValueError):
    """An optional tracker whose package is not installed, or an unknown BoxMOT tracker name."""


def import_boxmot():
    try:
        return importlib.import_module("boxmot")
    except ImportError as exc:
        raise TrackerUnavailableError(
            f"BoxMOT trackers need the optional package boxmot (AGPL-3.0), which is not installed: "
            f"run `pip install boxmot=={BOXMOT_VERSION}` ({exc})") from exc


class BoxMOTTracker:
    """Adapter: ``BoxMOTTracker('bytetrack', frame_rate=12, image_size=(1600, 900))``; ``update(dets) -> (M, 8)``."""

    def __init__(self, name: str, frame_rate: float = 30.0, image_size: tuple[int, int] = (1600, 900),
                 per_class: bool = True, device: str = "cpu", **kwargs) -> None:
        key = name.lower().replace("-", "").replace("_", "")
        if key not in BOXMOT_TRACKERS:
            raise TrackerUnavailableError(f"unknown BoxMOT tracker {name!r}; choose one of {sorted(BOXMOT_TRACKERS)}")
        boxmot = import_boxmot()
        cls = next((getattr(boxmot, c) for c in BOXMOT_TRACKERS[key] if hasattr(boxmot, c)), None)
        if cls is None:
            raise TrackerUnavailableError(f"boxmot {getattr(boxmot, '__version__', '?')} has none of "
                                          f"{BOXMOT_TRACKERS[key]}; install boxmot=={BOXMOT_VERSION}")
        wanted = {"frame_rate": int(round(frame_rate)), "per_class": per_class, "with_reid": False,
                  "reid_weights": None, "device": device, "half": False, **kwargs}
        params = inspect.signature(cls).parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        self.tracker = cls(**{k: v for k, v in wanted.items() if accepts_any or k in params})
        self.name = key
        self._img = np.zeros((int(image_size[1]), int(image_size[0]), 3), dtype=np.uint8)

    def update(self, dets: np.ndarray) -> np.ndarray:
        dets = np.asarray(dets, dtype=np.float32).reshape(-1, 6)
        out = self.tracker.update(dets, self._img)
        out = np.asarray(out, dtype=np.float64)
        if out.size == 0:
            return np.zeros((0, 8))
        return out.reshape(len(out), -1)[:, :8]
