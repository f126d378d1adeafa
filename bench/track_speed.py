"""Tracking speed on CPU: camera frames per second, 6 cameras per timestamp, one batched model call per timestamp.

    .venv/bin/python bench/track_speed.py [--scenes 2] [--threads 2] [--seed 0] [--frames N]
        [--variants kalman trackssm-cv trackssm boxmot:bytetrack boxmot:botsort boxmot:ocsort]
        (default: kalman trackssm-cv)

Builds a synthetic export (``trackssm_lib.synth`` + ``prepare``, no images), draws ``noisy`` detections for every
sequence (outside the timing), then times the whole tracker (:class:`MultiCameraTracker`: association + motion
model) over all scenes, frame index by frame index (6 cameras per step). Variants:

* ``kalman``: the constant-velocity Kalman tracker;
* ``boxmot:NAME``: a BoxMOT tracker (optional extra; no ReID, no camera-motion compensation), for reference;
* ``trackssm``: the TrackSSM tracker with random weights. Random predictions lose every track, so the pool (tracked
  + lost tracks, all predicted every frame) is far larger than with trained weights: a pessimistic figure (not run
  by default);
* ``trackssm-cv``: the TrackSSM tracker whose batched call runs the real (random-weight) TrackSSM forward on the
  conditions, then returns a constant-velocity prediction (last box + last delta) to the association. The compute
  is the model's, the pool sizes are those of a model that follows the objects: the figure to compare with the goal
  (>= 72 camera frames per second on 2 cores, i.e. 12 Hz x 6 cameras in real time).

Prints one line per variant: camera frames per second, timestamps per second, mean detections, confirmed tracks and
predicted tracks (the model's batch size) per timestamp, and the split of the time per timestamp between the model
call and the rest (association, Kalman filter, bookkeeping).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trackssm_lib.data import read_seqinfo  # noqa: E402
from trackssm_lib.detections import load_detections  # noqa: E402
from trackssm_lib.model import TrackSSM  # noqa: E402
from trackssm_lib.tracking import scene_of  # noqa: E402
from trackssm_lib.trackers import BoxMOTTracker, KalmanTracker, MultiCameraTracker, TrackSSMTracker  # noqa: E402

BOXMOT_VARIANTS = ("boxmot:bytetrack", "boxmot:botsort", "boxmot:ocsort")  # optional extra (make installs it)


class ComputeThenConstantVelocity(torch.nn.Module):
    """Runs the real TrackSSM forward (its cost), returns last box + last delta (a model that follows objects)."""

    def __init__(self, model: TrackSSM) -> None:
        super().__init__()
        self.model = model
        self.seconds = 0.0

    def predict(self, condition, class_ids=None):
        t0 = time.perf_counter()
        self.model.predict(condition, class_ids)
        self.seconds += time.perf_counter() - t0
        return condition[:, -1, :4] + condition[:, -1, 4:]


class Timed(torch.nn.Module):
    """The model itself, with the time spent in its calls."""

    def __init__(self, model: TrackSSM) -> None:
        super().__init__()
        self.model = model
        self.seconds = 0.0

    def predict(self, condition, class_ids=None):
        t0 = time.perf_counter()
        out = self.model.predict(condition, class_ids)
        self.seconds += time.perf_counter() - t0
        return out


def build_export(tmp: Path, scenes: int, seed: int) -> Path:
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=scenes, seed=seed, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", progress=False)
    return tmp / "export"


def load_scenes(export: Path, seed: int, max_frames: int | None) -> list[dict]:
    groups: dict[str, list[Path]] = {}
    for info_path in sorted(export.glob("*/*/seqinfo.ini")):
        groups.setdefault(scene_of(info_path.parent.name), []).append(info_path.parent)
    scenes = []
    for dirs in groups.values():
        dets, infos = {}, {}
        for d in dirs:
            infos[d.name] = read_seqinfo(d)
            frames = load_detections("noisy", d, seed=seed)
            if max_frames:
                frames = {f: v for f, v in frames.items() if f <= max_frames}
            dets[d.name] = frames
        scenes.append({"dets": dets, "infos": infos})
    return scenes


def run_variant(name: str, scenes: list[dict], model) -> dict:
    n_cam_frames = n_steps = n_dets = n_tracks = n_pred = 0
    elapsed = 0.0
    for scene in scenes:
        trackers = {}
        for seq, info in scene["infos"].items():
            fps, size = float(info["frameRate"]), (info["imWidth"], info["imHeight"])
            if name == "kalman":
                trackers[seq] = KalmanTracker(frame_rate=fps)
            elif name.startswith("boxmot:"):
                trackers[seq] = BoxMOTTracker(name.split(":", 1)[1], frame_rate=fps, image_size=size)
            else:
                trackers[seq] = TrackSSMTracker(model, frame_rate=fps, image_size=size)
        multi = MultiCameraTracker(trackers)
        dets = scene["dets"]
        n = max(max(v) for v in dets.values())
        for f in range(1, n + 1):
            step = {s: v[f] for s, v in dets.items() if f in v}
            pool = sum(len(trackers[s].prediction_pool()) for s in step if hasattr(trackers[s], "prediction_pool"))
            t0 = time.perf_counter()
            out = multi.update(step)
            elapsed += time.perf_counter() - t0
            n_steps += 1
            n_cam_frames += len(step)
            n_dets += sum(len(v) for v in step.values())
            n_tracks += sum(len(v) for v in out.values())
            n_pred += pool
    model_s = getattr(model, "seconds", 0.0)
    return {"variant": name, "camera_fps": n_cam_frames / elapsed, "timestamps_per_s": n_steps / elapsed,
            "model_ms": 1000 * model_s / n_steps, "other_ms": 1000 * (elapsed - model_s) / n_steps,
            "camera_frames": n_cam_frames, "seconds": elapsed, "dets_per_ts": n_dets / n_steps,
            "tracks_per_ts": n_tracks / n_steps, "predicted_per_ts": n_pred / n_steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=2, help="synthetic scenes (6 cameras each)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames of each sequence")
    parser.add_argument("--variants", nargs="+", default=["kalman", "trackssm-cv"],
                        choices=["kalman", "trackssm-cv", "trackssm", *BOXMOT_VARIANTS])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = TrackSSM().eval()
    print(f"# track_speed: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, backend {model.backend}, scenes {args.scenes}, noisy detections "
          f"seed {args.seed}")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        scenes = load_scenes(build_export(Path(tmp), args.scenes, args.seed), args.seed, args.frames)
        print(f"# data ready in {time.perf_counter() - t0:.1f} s")
    # warm-up (first-call allocations)
    model.predict(torch.zeros(8, 5, 8), torch.zeros(8, dtype=torch.long))
    models = {"kalman": None, "trackssm": Timed(model), "trackssm-cv": ComputeThenConstantVelocity(model),
              **{v: None for v in BOXMOT_VARIANTS}}
    for name in args.variants:
        r = run_variant(name, scenes, models[name])
        print(f"{r['variant']:16s} {r['camera_fps']:8.1f} camera frames/s  {r['timestamps_per_s']:6.1f} timestamps/s  "
              f"({r['camera_frames']} camera frames in {r['seconds']:.1f} s; per timestamp: "
              f"{r['dets_per_ts']:.1f} detections, {r['tracks_per_ts']:.1f} confirmed tracks out, "
              f"{r['predicted_per_ts']:.1f} tracks predicted in one call; {r['model_ms']:.1f} ms model + "
              f"{r['other_ms']:.1f} ms association/bookkeeping per timestamp)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
