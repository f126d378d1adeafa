"""Run a tracker over a prepared split: one result file per sequence, cameras of a scene batched together.

``python -m trackssm_lib track --data EXPORT --split mini_val --tracker trackssm|kalman|oracle|oracle-past|boxmot:NAME
[--checkpoint PATH] --detections gt|noisy|DIR --out RESULTS [--ego-compensation]``

Results: ``OUT/<sequence>.txt`` with rows ``frame,track_id,x,y,w,h,score,class_id,-1,-1`` (MOT format, top-left
x/y in pixels, 1-based frames; track ids 1-based, small and unique per sequence), written atomically; every
sequence of the split gets a file, possibly empty. Detections at frames outside the sequence's 1..seqLength
(``seqinfo.ini``) are dropped before tracking, with a warning naming the sequence, the rows and their frames (and
counted in the run's summary, ``clipped_detections``). The sequences ``<scene>_<CAMERA>`` of a scene are tracked
together (one tracker per camera, one batched TrackSSM call per frame index, see
:class:`~trackssm_lib.trackers.MultiCameraTracker`). ``--ego-compensation`` (off by default: the official tracker
has none) moves every track through the camera's rotation between frames, from the poses in ``camera.csv``
(:mod:`trackssm_lib.ego_motion`), before each prediction; trackssm and kalman get the same compensation.
``oracle`` is an analysis bound, not a tracker: the same association with each track's next box taken from the
sequence's ground truth (:mod:`trackssm_lib.trackers.oracle_tracker`); ``oracle-past`` takes only the truth's past
and extrapolates it at constant velocity (perfect state estimation, no foresight). An ego-aware TrackSSM model
(the ``ego_aware`` training option) also gets the camera's motion into every frame from ``camera.csv``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from trackssm_lib.constants import CAMERAS
from trackssm_lib.data import camera_of, read_seqinfo, split_sequence_dirs
from trackssm_lib.detections import load_detections
from trackssm_lib.ego_motion import CameraPoseError, frame_homographies, frame_twists
from trackssm_lib.fileio import write_text_atomic

TRACKERS = ("trackssm", "kalman", "oracle", "oracle-past")
ORACLES = ("oracle", "oracle-past")  # read the ground truth
# torch CPU threads while tracking: every core (on 2 quiet cores the shipped model tracks 155-186 camera frames/s
# with 2 threads and 133 with 1; bench/RESULTS.md, "Tracking speed"); pass 1 on a machine shared with other heavy
# processes, where 2 threads fall far lower
TRACK_THREADS = max(1, os.cpu_count() or 1)
RESULT_COLUMNS = ("frame", "track_id", "x", "y", "w", "h", "score", "class_id", "-1", "-1")


class TrackingError(ValueError):
    """Bad tracking request: unknown tracker, missing split or data, unreadable checkpoint."""


class UnknownTrackerError(TrackingError):
    """A tracker name that is none of trackssm, kalman, oracle, oracle-past, boxmot:NAME."""


def parse_tracker(spec: str) -> tuple[str, str | None]:
    """``'trackssm'`` -> ('trackssm', None); ``'boxmot:bytetrack'`` -> ('boxmot', 'bytetrack')."""
    spec = str(spec).strip()
    if spec.lower() in TRACKERS:
        return spec.lower(), None
    if spec.lower().startswith("boxmot:") and spec.split(":", 1)[1]:
        return "boxmot", spec.split(":", 1)[1].lower()
    raise UnknownTrackerError(f"unknown tracker {spec!r}: choose trackssm, kalman, oracle, oracle-past or boxmot:NAME "
                              f"(NAME = bytetrack, botsort or ocsort)")


def scene_of(sequence: str) -> str:
    """``scene-0061_CAM_FRONT`` -> ``scene-0061`` (a name without a camera suffix is its own group)."""
    for cam in CAMERAS:
        if sequence.endswith("_" + cam):
            return sequence[: -len(cam) - 1]
    return sequence


def load_model(checkpoint: str | Path | None, seed: int = 0, device: str = "cpu"):
    """TrackSSM from ``checkpoint`` (official or project format), or with seeded random weights when None."""
    import torch

    from trackssm_lib.model import TrackSSM, load_checkpoint

    if checkpoint is None:
        warnings.warn("no --checkpoint: TrackSSM runs with random weights (only useful for tests and speed)",
                      stacklevel=2)
        torch.manual_seed(seed)
        model = TrackSSM()
    else:
        from trackssm_lib.zoo import resolve_checkpoint

        path = Path(resolve_checkpoint(checkpoint))  # zoo:NAME -> the shipped weights, sha256 checked
        if not path.is_file():
            raise TrackingError(f"checkpoint {path} not found")
        try:
            model = load_checkpoint(path, map_location=device)
        except ValueError:
            raise
        except Exception as exc:  # unpickling errors of a file that is no checkpoint
            raise TrackingError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from exc
    return model.to(device).eval()


def split_dirs(data_dir: str | Path, split: str) -> list[Path]:
    """The sequence folders of ``split`` in the prepared export ``data_dir`` (TrackingError: missing or empty)."""
    try:
        seq_dirs = split_sequence_dirs(data_dir, split)
    except FileNotFoundError as exc:
        raise TrackingError(str(exc)) from exc
    if not seq_dirs:
        raise TrackingError(f"split {split!r} in {data_dir} has no sequences")
    return seq_dirs


def group_scenes(seq_dirs: list[Path]) -> dict[str, list[Path]]:
    """Sequence folders by scene (the cameras of a scene are tracked together), in their order."""
    scenes: dict[str, list[Path]] = {}
    for d in seq_dirs:
        scenes.setdefault(scene_of(d.name), []).append(d)
    return scenes


def require_ground_truth(seq_dirs: list[Path], purpose: str) -> None:
    """TrackingError naming the first sequence without ``gt/gt.txt`` (``purpose``: why it is needed)."""
    missing = [d / "gt" / "gt.txt" for d in seq_dirs if not (d / "gt" / "gt.txt").is_file()]
    if missing:
        raise TrackingError(f"{purpose}, but {missing[0]} is missing ({len(missing)} of {len(seq_dirs)} sequences "
                            f"have none)")


def make_tracker(kind: str, name: str | None, frame_rate: float, image_size: tuple[int, int], model: Any = None,
                 seq_dir: str | Path | None = None, camera: str | None = None, **assoc: Any):
    """One tracker for one sequence (``seq_dir``: the prepared sequence, whose ground truth the oracles read;
    ``camera``: its camera, read by camera-aware TrackSSM models)."""
    from trackssm_lib.trackers import BoxMOTTracker, KalmanTracker, OracleTracker, PastOracleTracker, TrackSSMTracker
    from trackssm_lib.trackers.oracle_tracker import ground_truth_boxes

    if kind == "trackssm":
        return TrackSSMTracker(model, frame_rate=frame_rate, image_size=image_size, camera=camera, **assoc)
    if kind == "kalman":
        return KalmanTracker(frame_rate=frame_rate, **assoc)
    if kind in ORACLES:
        if seq_dir is None:
            raise TrackingError(f"the {kind} tracker needs the sequence folder (it reads gt/gt.txt)")
        oracle = OracleTracker if kind == "oracle" else PastOracleTracker
        return oracle(ground_truth_boxes(seq_dir), frame_rate=frame_rate, **assoc)
    return BoxMOTTracker(name or "", frame_rate=frame_rate, image_size=image_size)


def format_rows(rows: np.ndarray) -> str:
    """(R, 8) [frame, id, x1, y1, x2, y2, score, class] -> MOT lines ``frame,id,x,y,w,h,score,class,-1,-1``."""
    lines = [f"{int(f)},{int(i)},{x1:.3f},{y1:.3f},{x2 - x1:.3f},{y2 - y1:.3f},{s:.4f},{int(c)},-1,-1\n"
             for f, i, x1, y1, x2, y2, s, c in rows.tolist()]
    return "".join(lines)


def ego_twists(seq_dirs: list[Path], without_rotation: bool = False) -> dict[Path, np.ndarray]:
    """Per sequence folder, the camera's twist into every frame (``camera.csv``;
    :func:`~trackssm_lib.ego_motion.frame_twists`), for ego-aware models; ``without_rotation``: the rotation part
    zeroed (with ego-rotation compensation the tracks are already moved through the rotation). A missing or
    malformed ``camera.csv`` raises TrackingError naming it."""
    out = {}
    for d in seq_dirs:
        try:
            twists = frame_twists(d, read_seqinfo(d).get("seqLength"))
        except CameraPoseError as exc:
            raise TrackingError(f"the ego-aware model reads the camera's motion: {exc}") from exc
        if without_rotation:
            twists[:, 3:] = 0.0
        out[d] = twists
    return out


def model_is_ego_aware(kind: str, model: Any) -> bool:
    return kind == "trackssm" and bool(getattr(model, "ego_aware", False))


def clip_to_sequence(dets: dict[int, np.ndarray], length: int | None
                     ) -> tuple[dict[int, np.ndarray], dict[str, int] | None]:
    """``dets`` ({frame: (N, 6)}) without the frames outside 1..``length`` (the sequence's ``seqLength``) ->
    (kept detections, what was dropped: ``{"rows", "first_frame", "last_frame"}`` over the dropped frames that held
    rows, or None when no row was dropped). ``length`` None or < 1 (no seqLength): everything is kept. Empty frames
    outside the range are dropped without a count."""
    if not length or int(length) < 1:
        return dets, None
    inside = {f: v for f, v in dets.items() if 1 <= f <= int(length)}
    dropped = sorted(f for f, v in dets.items() if f not in inside and len(v))
    if not dropped:
        return inside, None
    rows = int(sum(len(dets[f]) for f in dropped))
    return inside, {"rows": rows, "first_frame": int(dropped[0]), "last_frame": int(dropped[-1])}


def warn_clipped(sequence: str, length: int, dropped: dict[str, int]) -> None:
    """One line on stderr (through tqdm, so a progress bar stays intact) naming the sequence, the number of
    detection rows dropped by :func:`clip_to_sequence` and their frame range."""
    tqdm.write(f"warning: {sequence}: {dropped['rows']} detection row(s) at frames {dropped['first_frame']}.."
               f"{dropped['last_frame']} outside 1..seqLength={length} dropped before tracking", file=sys.stderr)


def check_detection_files(detections: str | Path, seq_dirs: list[Path]) -> None:
    """A folder of detections read for every sequence before any tracking, so that a missing or malformed
    ``<sequence>.txt`` (DetectionError naming the file and line) stops the run before a result file is written.
    The ``gt`` and ``noisy`` profiles are built from the export's checked ground truth: nothing to read early."""
    if isinstance(detections, str) and detections in ("gt", "noisy"):
        return
    for d in seq_dirs:
        load_detections(detections, d)


def track_scene(seq_dirs: list[Path], kind: str, name: str | None, detections: str | Path, model: Any,
                seed: int, det_config: dict | None = None, homographies: dict[Path, np.ndarray] | None = None,
                observer: Any = None, twists: dict[Path, np.ndarray] | None = None,
                on_frames: Callable[[int], Any] | None = None, every: int = 12,
                clipped: dict[str, dict[str, int]] | None = None, **assoc: Any) -> dict[str, np.ndarray]:
    """Track the sequences of one scene together -> {sequence: (R, 8) frame, id, x1, y1, x2, y2, score, class}.

    ``homographies``: per sequence folder, the camera's rotation homography of every frame
    (:func:`~trackssm_lib.ego_motion.frame_homographies`); given, every track is warped by it before each update.
    ``twists``: per sequence folder, the camera's twist into every frame (:func:`ego_twists`), read by ego-aware
    TrackSSM models (None: read from ``camera.csv`` when the model is ego-aware).
    ``observer`` (analysis, e.g. :class:`~trackssm_lib.lost_tracks.LostTrackRecorder`): its
    ``before_update(frame, trackers)`` and ``after_update(frame, trackers, dets)`` are called around every update
    with the trackers and detections of the cameras taking part ({sequence: ...}).
    ``on_frames`` (progress): called with the number of camera frames processed since its last call, every
    ``every`` frame indices and once after the last (never per frame, so the loop stays as fast).
    Detections at frames outside 1..seqLength (``seqinfo.ini``) are dropped before tracking
    (:func:`clip_to_sequence`), with a warning on stderr per sequence; ``clipped`` (when given) receives
    ``{sequence: {"rows", "first_frame", "last_frame"}}`` for each sequence that had such rows.
    """
    from trackssm_lib.trackers import MultiCameraTracker

    infos, dets, trackers, warps, egos = {}, {}, {}, {}, {}
    if not model_is_ego_aware(kind, model):
        twists = None  # only an ego-aware TrackSSM reads the camera's motion
    elif twists is None:
        twists = ego_twists(seq_dirs, without_rotation=homographies is not None)
    for d in seq_dirs:
        info = read_seqinfo(d)
        seq = str(info.get("name", d.name))
        infos[seq] = info
        dets[seq], dropped = clip_to_sequence(load_detections(detections, d, seed=seed, config=det_config),
                                              info.get("seqLength"))
        if dropped is not None:
            warn_clipped(seq, info["seqLength"], dropped)
            if clipped is not None:
                clipped[seq] = dropped
        trackers[seq] = make_tracker(kind, name, float(info.get("frameRate", 12)),
                                     (info["imWidth"], info["imHeight"]), model, seq_dir=d, camera=camera_of(seq),
                                     **assoc)
        if homographies is not None:
            warps[seq] = homographies[d]
        if twists is not None:
            egos[seq] = twists[d]
    multi = MultiCameraTracker(trackers)
    lengths = {s: max(dets[s]) if dets[s] else 0 for s in dets}
    rows: dict[str, list[np.ndarray]] = {s: [] for s in dets}
    pending = 0  # camera frames processed since on_frames was last called
    for frame in range(1, max(lengths.values(), default=0) + 1):
        step = {s: dets[s].get(frame, np.zeros((0, 6))) for s in dets if frame <= lengths[s]}
        pending += len(step)
        if on_frames is not None and frame % every == 0:
            on_frames(pending)
            pending = 0
        for s in step:
            if s in warps and frame >= 2:
                trackers[s].camera_motion(warps[s][frame - 1])
            if s in egos:
                trackers[s].set_ego_motion(egos[s][frame - 1])
        if observer is not None:
            observer.before_update(frame, {s: trackers[s] for s in step})
        out = multi.update(step)
        if observer is not None:
            observer.after_update(frame, {s: trackers[s] for s in step}, step)
        for s, tracks in out.items():
            if len(tracks):
                rows[s].append(np.column_stack([np.full(len(tracks), frame), tracks[:, 4], tracks[:, :4],
                                                tracks[:, 5], tracks[:, 6]]))
    if on_frames is not None and pending:
        on_frames(pending)
    return {s: (np.concatenate(r) if r else np.zeros((0, 8))) for s, r in rows.items()}


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's CPU thread count set to ``threads`` inside the block (None: :data:`TRACK_THREADS`), restored after."""
    import torch

    threads = TRACK_THREADS if threads is None else threads
    if int(threads) < 1:
        raise TrackingError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_tracking(data_dir: str | Path, split: str, tracker: str = "trackssm", detections: str | Path = "gt",
                 out: str | Path = "results", checkpoint: str | Path | None = None, seed: int = 0,
                 progress: bool = True, det_config: dict | None = None, device: str = "cpu",
                 ego_compensation: bool = False, threads: int | None = TRACK_THREADS,
                 **assoc: Any) -> dict[str, Any]:
    """Track every sequence of ``split`` in the prepared export ``data_dir``; write ``out/<sequence>.txt``.

    ``ego_compensation``: remove the camera's own rotation from the image motion (``camera.csv`` poses; trackssm,
    kalman and the oracles). ``progress``: a tqdm bar on stderr counting camera frames (total: the sequences'
    ``seqLength`` summed), the current scene in its postfix; nothing is printed when False. ``threads``: torch's CPU
    threads while tracking (None: :data:`TRACK_THREADS`, every core), so the speed it reports does not depend on
    what else the process set.

    Detections at frames outside a sequence's 1..seqLength are dropped before tracking, each such sequence named in
    a warning on stderr; a detections folder is read in full before the first result is written (a bad file stops
    the run with nothing written).

    Returns a summary: sequences, frames, boxes, tracks (ids over all sequences), seconds, camera frames per
    second, the output folder, the settings and ``clipped_detections`` ({sequence: {"rows", "first_frame",
    "last_frame"}} of the detection rows dropped outside the sequence; empty when none).
    """
    kind, name = parse_tracker(tracker)
    if threads is not None and int(threads) < 1:
        raise TrackingError(f"--threads must be >= 1, got {threads}")
    if checkpoint is not None and kind != "trackssm":
        raise TrackingError(f"--checkpoint is only used by the trackssm tracker, not {tracker!r}")
    if checkpoint is not None:  # zoo:NAME -> the shipped weights (an unknown name or a bad sha256 fails here)
        from trackssm_lib.zoo import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint)
    if ego_compensation and kind == "boxmot":
        raise TrackingError("--ego-compensation applies to the trackssm, kalman and oracle trackers; BoxMOT "
                            "trackers run with their own settings")
    seq_dirs = split_dirs(data_dir, split)
    if isinstance(detections, str) and detections not in ("gt", "noisy") and not Path(detections).is_dir():
        raise TrackingError(f"detections {detections!r}: use gt, noisy or a folder of <sequence>.txt files")
    if kind == "boxmot":
        from trackssm_lib.trackers.boxmot_adapter import BOXMOT_TRACKERS, import_boxmot

        if name not in BOXMOT_TRACKERS:
            raise UnknownTrackerError(f"unknown BoxMOT tracker {name!r}; choose one of {sorted(BOXMOT_TRACKERS)}")
        import_boxmot()
    check_detection_files(detections, seq_dirs)
    if kind in ORACLES:  # it predicts from the ground truth: every sequence must have one
        require_ground_truth(seq_dirs, f"the {kind} tracker predicts from the ground truth")
    homographies = None
    if ego_compensation:  # every camera.csv read (and checked) before any tracking starts
        try:
            homographies = {d: frame_homographies(d, read_seqinfo(d).get("seqLength")) for d in seq_dirs}
        except CameraPoseError as exc:
            raise TrackingError(str(exc)) from exc
    model = load_model(checkpoint, seed=seed, device=device) if kind == "trackssm" else None
    twists = ego_twists(seq_dirs, without_rotation=ego_compensation) if model_is_ego_aware(kind, model) else None

    scenes = group_scenes(seq_dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_frames = n_boxes = n_tracks = 0
    clipped: dict[str, dict[str, int]] = {}
    seq_lengths = {d: int(read_seqinfo(d).get("seqLength", 0)) for d in seq_dirs}
    start = time.perf_counter()
    # The bar counts camera frames (seqinfo.ini seqLength summed over the split's sequences), the scene in its
    # postfix; track_scene reports them every 12 frame indices, and each scene is topped up to its length at its end.
    bar = tqdm(total=sum(seq_lengths.values()), desc=f"track {tracker}", unit="frame", disable=not progress,
               file=sys.stderr)
    with torch_threads(threads), contextlib.closing(bar):
        for scene, dirs in scenes.items():
            bar.set_postfix_str(f"{scene} ({len(dirs)} cameras)", refresh=False)
            done = bar.n + sum(seq_lengths[d] for d in dirs)
            results = track_scene(dirs, kind, name, detections, model, seed, det_config, homographies,
                                  twists=twists, on_frames=bar.update if progress else None, clipped=clipped,
                                  **assoc)
            if progress and bar.n < done:
                bar.update(done - bar.n)
            for d in dirs:
                info = read_seqinfo(d)
                seq = str(info.get("name", d.name))
                rows = results.get(seq, np.zeros((0, 8)))
                write_text_atomic(out / f"{seq}.txt", format_rows(rows))
                n_boxes += len(rows)
                n_tracks += len(np.unique(rows[:, 1])) if len(rows) else 0
                n_frames += seq_lengths[d]
    seconds = time.perf_counter() - start
    return {"sequences": len(seq_dirs), "scenes": len(scenes), "frames": n_frames, "boxes": n_boxes,
            "tracks": n_tracks, "seconds": round(seconds, 3),
            "fps": round(n_frames / seconds, 1) if seconds > 0 else None, "out": str(out), "tracker": tracker,
            "detections": str(detections), "checkpoint": None if checkpoint is None else str(checkpoint),
            "seed": seed, "split": split, "ego_compensation": bool(ego_compensation),
            "threads": TRACK_THREADS if threads is None else int(threads), "clipped_detections": clipped}



# ------------------------------------------------------------------------------------------------------ CLI
def _track_command(args: argparse.Namespace) -> int:
    import json

    summary = run_tracking(args.data, args.split, tracker=args.tracker, detections=args.detections, out=args.out,
                           checkpoint=args.checkpoint, seed=args.seed, progress=not args.quiet,
                           ego_compensation=args.ego_compensation, threads=args.threads)
    print(json.dumps(summary))
    return 0


def add_track_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``track`` on the ``python -m trackssm_lib`` sub-parsers (``args.func(args)`` runs it)."""
    p = subparsers.add_parser("track", help="run a tracker on a prepared split; MOT result files per sequence")
    p.add_argument("--data", required=True, help="prepared export folder")
    p.add_argument("--split", required=True, help="split name (mini_val, val, ...)")
    p.add_argument("--tracker", default="trackssm", help="trackssm | kalman | boxmot:NAME (bytetrack, botsort, "
                                                         "ocsort; needs pip install boxmot==19.0.0) | oracle (the "
                                                         "same association predicting each track's next box from "
                                                         "the ground truth: a bound, not a tracker) | "
                                                         "oracle-past (from the truth's past only, at constant "
                                                         "velocity)")
    p.add_argument("--checkpoint", default=None, help="TrackSSM checkpoint (official or project); default: random "
                                                      "weights (tests and speed only)")
    p.add_argument("--detections", default="gt", help="gt | noisy | folder of <sequence>.txt MOT detections")
    p.add_argument("--out", required=True, help="results folder (<sequence>.txt)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noisy detections (and of random weights)")
    p.add_argument("--ego-compensation", action="store_true",
                   help="remove the camera's own rotation between frames (poses in camera.csv) before each "
                        "prediction; trackssm and kalman (off: the official tracker)")
    p.add_argument("--threads", type=int, default=TRACK_THREADS,
                   help=f"torch CPU threads while tracking (default: every core, here {TRACK_THREADS}; 1 on a "
                        f"machine shared with other heavy processes; see bench/RESULTS.md)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_track_command)
    return p
