"""Indexed views of one scene: its keyframe annotations and each camera's chain of frames.

A camera sequence runs along the camera's ``sample_data`` chain (``next`` links) from the scene's first keyframe
to its last keyframe: keyframes and the ~12 Hz sweeps between them, each with its own ego pose and calibration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nuscenes.nuscenes import NuScenes

from trackssm_lib.constants import CAMERAS, tracking_class
from trackssm_lib.nuscenes_db import DataError


def get_scene(nusc: NuScenes, scene_name: str) -> dict:
    """The scene record with this name; DataError listing some valid names otherwise."""
    index = getattr(nusc, "_trackssm_scene_index", None)
    if index is None:
        index = {s["name"]: s for s in nusc.scene}
        nusc._trackssm_scene_index = index
    if scene_name not in index:
        names = sorted(index)
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise DataError(f"unknown scene {scene_name!r} in {nusc.version} at {nusc.dataroot}; scenes: {shown}")
    return index[scene_name]


def check_cameras(cameras) -> tuple[str, ...]:
    cameras = tuple(cameras) if cameras else CAMERAS
    bad = [c for c in cameras if c not in CAMERAS]
    if bad:
        raise DataError(f"unknown camera(s) {bad}; expected some of {CAMERAS}")
    return cameras


@dataclass
class SceneAnnotations:
    """All keyframe annotations of a scene as arrays; ``ann_index[s, i]`` is the row of instance i at sample s."""

    scene_name: str
    sample_tokens: np.ndarray      # (S,)
    sample_times: np.ndarray       # (S,) int64 microseconds
    instance_tokens: np.ndarray    # (I,)
    category_names: np.ndarray     # (I,)
    ann_index: np.ndarray          # (S, I) int, -1 where the instance is not annotated
    ann_tokens: np.ndarray         # (A,)
    translation: np.ndarray        # (A, 3)
    size: np.ndarray               # (A, 3) wlh
    rotation: np.ndarray           # (A, 4) wxyz
    visibility: np.ndarray         # (A,) int 1..4 (0 when unknown)

    @property
    def class_names(self) -> np.ndarray:
        return np.array([tracking_class(c) or "" for c in self.category_names], dtype=object)


def scene_samples(nusc: NuScenes, scene: dict) -> list[dict]:
    samples, token = [], scene["first_sample_token"]
    while token:
        sample = nusc.get("sample", token)
        if sample["scene_token"] != scene["token"]:
            break
        samples.append(sample)
        if token == scene["last_sample_token"]:
            break
        token = sample["next"]
    return samples


def scene_annotations(nusc: NuScenes, scene_name: str) -> SceneAnnotations:
    samples = scene_samples(nusc, get_scene(nusc, scene_name))
    inst_pos: dict[str, int] = {}
    rows = []
    for s_idx, sample in enumerate(samples):
        for token in sample["anns"]:
            ann = nusc.get("sample_annotation", token)
            i = inst_pos.setdefault(ann["instance_token"], len(inst_pos))
            rows.append((s_idx, i, ann))
    ann_index = np.full((len(samples), len(inst_pos)), -1, dtype=np.int64)
    categories = np.empty(len(inst_pos), dtype=object)
    for a, (s_idx, i, ann) in enumerate(rows):
        ann_index[s_idx, i] = a
        categories[i] = ann["category_name"]
    anns = [r[2] for r in rows]
    return SceneAnnotations(
        scene_name=scene_name,
        sample_tokens=np.array([s["token"] for s in samples], dtype=object),
        sample_times=np.array([s["timestamp"] for s in samples], dtype=np.int64),
        instance_tokens=np.array(list(inst_pos), dtype=object),
        category_names=categories,
        ann_index=ann_index,
        ann_tokens=np.array([a["token"] for a in anns], dtype=object),
        translation=np.array([a["translation"] for a in anns], dtype=np.float64).reshape(-1, 3),
        size=np.array([a["size"] for a in anns], dtype=np.float64).reshape(-1, 3),
        rotation=np.array([a["rotation"] for a in anns], dtype=np.float64).reshape(-1, 4),
        visibility=np.array([int(a["visibility_token"] or 0) for a in anns], dtype=np.int64),
    )


@dataclass
class CameraFrames:
    """One camera's frames in a scene, in chain order (frame number = index + 1)."""

    channel: str
    scene_name: str
    tokens: np.ndarray
    sample_tokens: np.ndarray
    sample_index: np.ndarray       # (F,) index into the scene's samples: the frame's sample (next keyframe for sweeps)
    timestamps: np.ndarray         # (F,) int64 microseconds
    is_key_frame: np.ndarray       # (F,) bool
    filenames: np.ndarray
    ego_translation: np.ndarray    # (F, 3)
    ego_rotation: np.ndarray       # (F, 4)
    cam_translation: np.ndarray    # (F, 3)
    cam_rotation: np.ndarray       # (F, 4)
    intrinsic: np.ndarray          # (F, 3, 3)

    def __len__(self) -> int:
        return len(self.tokens)


def camera_frames(nusc: NuScenes, scene_name: str, channel: str,
                  annotations: SceneAnnotations | None = None) -> CameraFrames:
    """Walk the camera's sample_data chain from the scene's first keyframe to its last keyframe."""
    check_cameras([channel])
    scene = get_scene(nusc, scene_name)
    if annotations is None:
        annotations = scene_annotations(nusc, scene_name)
    sample_pos = {tok: i for i, tok in enumerate(annotations.sample_tokens)}
    first = nusc.get("sample", scene["first_sample_token"])
    last = nusc.get("sample", scene["last_sample_token"])
    if channel not in first["data"]:
        raise DataError(f"scene {scene_name} has no {channel} data")
    end_token = last["data"].get(channel)
    records, token = [], first["data"][channel]
    while token:
        sd = nusc.get("sample_data", token)
        if sd["sample_token"] not in sample_pos:
            break
        records.append(sd)
        if token == end_token:
            break
        token = sd["next"]
    poses = [nusc.get("ego_pose", sd["ego_pose_token"]) for sd in records]
    calib_cache: dict[str, dict] = {}
    calibs = [calib_cache.setdefault(sd["calibrated_sensor_token"],
                                     nusc.get("calibrated_sensor", sd["calibrated_sensor_token"]))
              for sd in records]
    return CameraFrames(
        channel=channel,
        scene_name=scene_name,
        tokens=np.array([sd["token"] for sd in records], dtype=object),
        sample_tokens=np.array([sd["sample_token"] for sd in records], dtype=object),
        sample_index=np.array([sample_pos[sd["sample_token"]] for sd in records], dtype=np.int64),
        timestamps=np.array([sd["timestamp"] for sd in records], dtype=np.int64),
        is_key_frame=np.array([sd["is_key_frame"] for sd in records], dtype=bool),
        filenames=np.array([sd["filename"] for sd in records], dtype=object),
        ego_translation=np.array([p["translation"] for p in poses], dtype=np.float64).reshape(-1, 3),
        ego_rotation=np.array([p["rotation"] for p in poses], dtype=np.float64).reshape(-1, 4),
        cam_translation=np.array([c["translation"] for c in calibs], dtype=np.float64).reshape(-1, 3),
        cam_rotation=np.array([c["rotation"] for c in calibs], dtype=np.float64).reshape(-1, 4),
        intrinsic=np.array([c["camera_intrinsic"] for c in calibs], dtype=np.float64).reshape(-1, 3, 3),
    )
