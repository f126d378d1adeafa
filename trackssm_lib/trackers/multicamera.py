"""Several cameras tracked together: one tracker per camera, ONE batched model call per timestamp.

The 6 cameras of a nuScenes scene fire at their own offsets within the same ~83 ms period and have about the same
number of frames, so frames are grouped by their frame index: step ``k`` updates frame ``k`` of every camera that
has one (a camera whose sequence is shorter simply stops taking part). Within a step, the prediction pools of every
TrackSSM tracker that shares the same model are concatenated into one ``model.predict`` call and the results are
split back per camera (with each camera's own ego motion for ego-aware models); other trackers (Kalman, ...)
predict on their own. Association stays per camera, so the result is the same as running each camera's tracker
alone (up to the model's batch-size floating point noise).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from trackssm_lib.trackers.association import BaseTracker
from trackssm_lib.trackers.trackssm_tracker import TrackSSMTracker


class MultiCameraTracker:
    """``trackers``: camera (or sequence) name -> tracker; ``update({name: dets (N, 6)})`` -> ``{name: (M, 8)}``."""

    def __init__(self, trackers: Mapping[str, object]) -> None:
        self.trackers = dict(trackers)
        self.model_calls = 0
        self.predicted_tracks = 0

    def update(self, dets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [n for n in self.trackers if n in dets]
        unknown = set(dets) - set(self.trackers)
        if unknown:
            raise KeyError(f"detections for unknown cameras {sorted(unknown)}")
        out: dict[str, np.ndarray] = {}
        batched: dict[int, list[str]] = {}
        for name in names:
            trk = self.trackers[name]
            if isinstance(trk, TrackSSMTracker):
                batched.setdefault(id(trk.model), []).append(name)
            else:  # own prediction (Kalman, BoxMOT adapters ...)
                out[name] = trk.update(dets[name])
        for group in batched.values():
            pools = {n: self.trackers[n].prediction_pool() for n in group}
            conds = [self.trackers[n].build_conditions(pools[n]) for n in group]
            classes = [self.trackers[n].class_ids(pools[n]) for n in group]
            egos = [self.trackers[n].ego_rows(pools[n]) for n in group]
            sizes = [len(c) for c in conds]
            total = sum(sizes)
            first: TrackSSMTracker = self.trackers[group[0]]
            if total:
                ego = None if egos[0] is None else np.concatenate(egos)
                pred = first.run_model(np.concatenate(conds), np.concatenate(classes), ego)
                self.model_calls += 1
                self.predicted_tracks += total
            else:
                pred = np.zeros((0, 4))
            start = 0
            for n, size in zip(group, sizes):
                trk: BaseTracker = self.trackers[n]
                boxes = trk.apply_predictions(pools[n], pred[start:start + size]) if size else np.zeros((0, 4))
                start += size
                out[n] = trk.step(dets[n], pools[n], boxes)
        return {n: out[n] for n in names}
