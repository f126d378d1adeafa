"""Where identity switches come from: every IDSW that TrackEval's CLEAR counts, located and given a cause.

TrackEval reports how many switches a tracker makes, not which ones or why. :func:`find_switches` runs the same
per-timestep matching as TrackEval's CLEAR metric (IoU >= 0.5, a match kept from the previous timestep wins, a
switch is a GT object matched to a different tracker id than at its previous match) on the data that
:class:`~trackssm_lib.evaluation.NuScenesMot2DBox` prepares, so the count per class equals TrackEval's IDSW (the
tests check this), and records each switch with its sequence, class, frames and ids. Each switch gets one cause:

``swap``
    the previous id is still output at the switch frame, on something else: two tracks exchanged objects, or the
    old track jumped onto a false positive;
``long_absence``
    otherwise, if the object was not annotated in this camera (out of view, fully occluded) for more than the lost
    timeout in one stretch between its previous match and the switch: an IoU tracker that drops lost tracks after
    ``lost_seconds`` cannot keep this id, whatever its motion model;
``missed`` (only when the detections the tracker ran on are given)
    otherwise, if the object had no detection for longer than the lost timeout in one stretch between its previous
    match and the switch (a detection of the object: one of its class with IoU >= 0.5 with its GT box, any score;
    frames where it is unannotated count as undetected): the track ran out of time before the detector saw the
    object again, whatever the motion model;
``track_lost``
    otherwise: the old track stopped while the object stayed in view (or left it for at most the timeout) and, when
    the detections are given, while it was detected again within the timeout: its predictions no longer overlapped
    the object's detections (or another track took them). This is the cause a better motion model can remove.
    Without the detections it also holds the ``missed`` switches.

The timeout is ``round(lost_seconds x frameRate)`` frames, as in the trackers (official: 1 s).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy.optimize import linear_sum_assignment

from trackssm_lib.boxes import paired_iou
from trackssm_lib.constants import CLASS_IDS, CLASS_NAMES
from trackssm_lib.data import read_seqinfo
from trackssm_lib.detections import load_detections
from trackssm_lib.evaluation import IOU_THRESHOLD, Sequence, dataset_class, load_project_sequences

CAUSES: tuple[str, ...] = ("swap", "long_absence", "missed", "track_lost")
_EPS = np.finfo("float").eps


@dataclass(frozen=True)
class Switch:
    """One identity switch: the GT object ``gt_id`` moved from ``previous_id`` (last matched at ``previous_frame``)
    to ``track_id`` at ``frame``; ``absent_frames`` is its longest unannotated stretch in between and
    ``undetected_frames`` its longest stretch without a detection (None when no detections were given)."""

    sequence: str
    class_name: str
    frame: int
    gt_id: int
    previous_id: int
    track_id: int
    previous_frame: int
    absent_frames: int
    cause: str
    undetected_frames: int | None = None


def clear_switch_events(data: dict[str, Any], threshold: float = IOU_THRESHOLD) -> list[tuple[int, int, int, int, int]]:
    """TrackEval CLEAR's matching on one class of one sequence (its preprocessed data) -> one
    ``(timestep, gt_id, previous_tracker_id, tracker_id, previous_timestep)`` per switch, in relabelled ids.

    The same steps as ``trackeval.metrics.CLEAR.eval_sequence``: a pair scores its IoU (0 below ``threshold``)
    plus 1000 when it was matched at the previous timestep; Hungarian matching maximises the score; a matched GT
    id whose last matched tracker id differs is a switch.
    """
    events = []
    n_gt = data["num_gt_ids"]
    prev_id = np.full(n_gt, np.nan)  # last tracker id matched to each GT id (switches)
    prev_t = np.full(n_gt, -1, dtype=np.int64)  # timestep of that match
    prev_step_id = np.full(n_gt, np.nan)  # tracker id matched at the previous timestep (kept matches)
    for t, (gt_ids, tr_ids) in enumerate(zip(data["gt_ids"], data["tracker_ids"])):
        if len(gt_ids) == 0 or len(tr_ids) == 0:
            continue  # as CLEAR: no matching, and the previous timestep's matches stay as they were
        sim = data["similarity_scores"][t]
        score = 1000.0 * (tr_ids[None, :] == prev_step_id[gt_ids[:, None]]) + sim
        score[sim < threshold - _EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > 0 + _EPS
        m_gt, m_tr = gt_ids[rows[ok]], tr_ids[cols[ok]]
        before = prev_id[m_gt]
        switched = ~np.isnan(before) & (m_tr != before)
        events += [(t, int(g), int(b), int(k), int(pt)) for g, b, k, pt in
                   zip(m_gt[switched], before[switched], m_tr[switched], prev_t[m_gt[switched]])]
        prev_id[m_gt] = m_tr
        prev_t[m_gt] = t
        prev_step_id[:] = np.nan
        prev_step_id[m_gt] = m_tr
    return events


def longest_absence(gt_frames: np.ndarray, start: int, end: int) -> int:
    """Longest run of frames strictly between ``start`` and ``end`` that are not in ``gt_frames``."""
    inside = np.unique(gt_frames[(gt_frames > start) & (gt_frames < end)])
    edges = np.concatenate([[start], inside, [end]])
    return int(np.max(np.diff(edges)) - 1)


def detected_frames(gt_rows: np.ndarray, detections: dict[int, np.ndarray], class_id: int) -> np.ndarray:
    """Frames of one object's GT rows (MOT columns) on which a detection of ``class_id`` overlaps its box with
    IoU >= 0.5 (any score)."""
    hits = []
    for row in gt_rows:
        frame = int(row[0])
        dets = detections.get(frame)
        if dets is None or not len(dets):
            continue
        dets = dets[dets[:, 5] == class_id]
        if not len(dets):
            continue
        box = np.array([[row[2], row[3], row[2] + row[4], row[3] + row[5]]])
        if paired_iou(np.repeat(box, len(dets), axis=0), dets[:, :4]).max() >= IOU_THRESHOLD - _EPS:
            hits.append(frame)
    return np.asarray(hits, dtype=np.int64)


def _classify(seq: Sequence, cls: str, event: tuple[int, int, int, int, int], gt_ids_orig: np.ndarray,
              tr_ids_orig: np.ndarray, lost_frames: int,
              detections: Callable[[], dict[int, np.ndarray]] | None) -> Switch:
    t, g, before, now, pt = event
    frame, prev_frame = int(seq.timesteps[t]), int(seq.timesteps[pt])
    gt_id, old_id, new_id = int(gt_ids_orig[g]), int(tr_ids_orig[before]), int(tr_ids_orig[now])
    gt, res = seq.gt, seq.results
    rows = gt[(gt[:, 1] == gt_id) & (gt[:, 6] != 0)]
    absent = longest_absence(rows[:, 0].astype(np.int64), prev_frame, frame)
    undetected = None
    if detections is not None:
        between = rows[(rows[:, 0] > prev_frame) & (rows[:, 0] < frame)]
        undetected = longest_absence(detected_frames(between, detections(), CLASS_IDS[cls]), prev_frame, frame)
    if np.any((res[:, 0] == frame) & (res[:, 1] == old_id)):
        cause = "swap"
    elif absent > lost_frames:
        cause = "long_absence"
    elif undetected is not None and undetected > lost_frames:
        cause = "missed"
    else:
        cause = "track_lost"
    return Switch(seq.name, cls, frame, gt_id, old_id, new_id, prev_frame, absent, cause, undetected)


def find_switches(gt_dir: str | Path, results_dir: str | Path, protocol: str = "keyframes",
                  lost_seconds: float = 1.0, detections: str | Path | None = None, seed: int = 0,
                  detection_config: dict[str, Any] | None = None) -> list[Switch]:
    """Every identity switch TrackEval counts for the results in ``results_dir`` (7-class path), with its cause.

    Missing result files are empty predictions (no switches). The lost timeout ``lost_seconds`` only decides
    between ``long_absence``, ``missed`` and ``track_lost``. ``detections`` (``'gt'``, ``'noisy'`` with ``seed`` and
    ``detection_config``, or a folder, as given to the tracker) enables the ``missed`` cause; without it those
    switches are ``track_lost``.
    """
    sequences, _ = load_project_sequences(gt_dir, results_dir, protocol)
    dataset = dataset_class()(sequences)
    switches: list[Switch] = []
    for seq in sequences:
        if seq.results is None or not len(seq.results):
            continue
        lost_frames = int(round(lost_seconds * float(read_seqinfo(seq.path).get("frameRate", 12))))
        raw = dataset.get_raw_seq_data("tracker", seq.name)
        # read (or generated) once per sequence, and only when it has a switch
        dets = None if detections is None else cache(lambda path=seq.path: load_detections(
            detections, path, seed=seed, config=detection_config))
        for cls in CLASS_NAMES:
            data = dataset.get_preprocessed_seq_data(raw, cls)
            for event in clear_switch_events(data):
                switches.append(_classify(seq, cls, event, data["gt_ids_original"], data["tracker_ids_original"],
                                          lost_frames, dets))
    return switches


def summarize_switches(switches: list[Switch]) -> dict[str, Any]:
    """Counts: ``total``, ``by_cause``, ``by_class`` ({class: {cause: n}}), every cause and class present."""
    by_class = {c: {k: 0 for k in CAUSES} for c in CLASS_NAMES}
    for s in switches:
        by_class[s.class_name][s.cause] += 1
    causes = Counter(s.cause for s in switches)
    return {"total": len(switches), "by_cause": {k: causes.get(k, 0) for k in CAUSES},
            "by_class": {c: v for c, v in by_class.items() if sum(v.values())}}


def switches_as_rows(switches: list[Switch]) -> list[dict[str, Any]]:
    """Plain dicts (for JSON or a DataFrame)."""
    return [asdict(s) for s in switches]


__all__ = ["CAUSES", "Switch", "clear_switch_events", "detected_frames", "find_switches", "longest_absence",
           "summarize_switches", "switches_as_rows"]
