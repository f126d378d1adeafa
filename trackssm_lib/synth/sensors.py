"""Sensor rig (6 cameras + LIDAR_TOP) with per-log calibration noise, and the sensor timing of a scene."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quat import rot_to_quat, rot_x, rot_y, rot_z

CAMERAS: tuple[str, ...] = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT",
                            "CAM_FRONT_LEFT")
LIDAR = "LIDAR_TOP"
CHANNELS: tuple[str, ...] = CAMERAS + (LIDAR,)
IMAGE_W, IMAGE_H = 1600, 900

# channel -> (translation in ego frame, yaw in degrees, focal length px, principal point)
_NOMINAL = {
    "CAM_FRONT": ((1.70, 0.016, 1.51), 0.0, 1266.0, (816.0, 491.0)),
    "CAM_FRONT_RIGHT": ((1.55, -0.493, 1.496), -55.0, 1260.0, (808.0, 495.0)),
    "CAM_BACK_RIGHT": ((1.015, -0.481, 1.562), -110.0, 1259.0, (807.0, 501.0)),
    "CAM_BACK": ((0.028, 0.003, 1.579), 180.0, 809.0, (829.0, 482.0)),
    "CAM_BACK_LEFT": ((1.036, 0.485, 1.591), 110.0, 1257.0, (792.0, 493.0)),
    "CAM_FRONT_LEFT": ((1.524, 0.495, 1.509), 55.0, 1272.0, (826.0, 480.0)),
}
# Camera keyframe offset from the LIDAR_TOP keyframe (the lidar sweeps past each camera in turn), seconds.
CAMERA_OFFSETS = {"CAM_FRONT": -0.035, "CAM_FRONT_RIGHT": -0.027, "CAM_BACK_RIGHT": -0.020, "CAM_BACK": -0.010,
                  "CAM_BACK_LEFT": -0.001, "CAM_FRONT_LEFT": -0.043}
LIDAR_TRANSLATION = (0.943713, 0.0, 1.84023)
# Ego-frame axes of a camera with zero yaw: camera z forward (ego x), camera x right (ego -y), y down (ego -z).
_CAM_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class Calib:
    """One sensor's calibration: ego-frame translation, rotation (matrix and quaternion) and intrinsics."""
    channel: str
    translation: np.ndarray
    rotation: np.ndarray  # 3x3, sensor -> ego
    quat: np.ndarray
    intrinsic: np.ndarray | None  # 3x3 for cameras


def make_rig(rng: np.random.Generator) -> dict[str, Calib]:
    """A nuScenes-like rig with small random perturbations (mm / tenths of a degree), one per log."""
    rig: dict[str, Calib] = {}
    for ch in CAMERAS:
        t, yaw, f, (cx, cy) = _NOMINAL[ch]
        t = np.array(t) + rng.normal(0.0, 0.004, 3)
        d = np.deg2rad(rng.normal(0.0, 0.35, 3))
        r = rot_z(np.deg2rad(yaw)) @ _CAM_BASE @ rot_x(d[0]) @ rot_y(d[1]) @ rot_z(d[2])
        f = f * (1.0 + rng.normal(0.0, 0.004))
        k = np.array([[f, 0.0, cx + rng.normal(0, 4)], [0.0, f, cy + rng.normal(0, 4)], [0.0, 0.0, 1.0]])
        rig[ch] = Calib(ch, t, r, rot_to_quat(r), k)
    t = np.array(LIDAR_TRANSLATION) + rng.normal(0.0, 0.002, 3)
    r = rot_z(np.deg2rad(-90.0 + rng.normal(0, 0.2))) @ rot_x(np.deg2rad(rng.normal(0, 0.3))) \
        @ rot_y(np.deg2rad(rng.normal(0, 0.3)))
    rig[LIDAR] = Calib(LIDAR, t, r, rot_to_quat(r), None)
    return rig


@dataclass
class Timing:
    """Timestamps (seconds from the scene's first keyframe) of keyframes and of every camera frame."""
    keyframes: np.ndarray  # (K,) LIDAR_TOP keyframe times == sample times
    cam_times: dict[str, np.ndarray]  # channel -> (F,) frame times, keyframes included
    cam_key: dict[str, np.ndarray]  # channel -> (F,) bool is_key_frame
    cam_sample: dict[str, np.ndarray]  # channel -> (F,) index of the sample (keyframe) of each frame


def make_timing(rng: np.random.Generator, n_samples: int, drop_prob: float = 0.035) -> Timing:
    """Keyframes at ~2 Hz; each camera at ~12 Hz (5 sweeps between keyframes, sometimes 4), chains running from
    the first to the last keyframe. A sweep belongs to the NEXT keyframe's sample, as in nuScenes."""
    kf = np.concatenate([[0.0], np.cumsum(0.5 + rng.normal(0.0, 0.0025, n_samples - 1))])
    cam_times, cam_key, cam_sample = {}, {}, {}
    for ch in CAMERAS:
        ck = kf + CAMERA_OFFSETS[ch] + rng.normal(0.0, 0.0008, n_samples)
        frac = np.arange(1, 6) / 6.0
        sweeps = ck[:-1, None] + frac[None, :] * np.diff(ck)[:, None] + rng.normal(0.0, 0.0012, (n_samples - 1, 5))
        keep = np.ones_like(sweeps, dtype=bool)
        drop = rng.random(n_samples - 1) < drop_prob
        keep[np.nonzero(drop)[0], rng.integers(0, 5, int(drop.sum()))] = False
        times = np.concatenate([ck[:-1, None], sweeps], axis=1)
        keys = np.zeros_like(times, dtype=bool)
        keys[:, 0] = True
        samp = np.broadcast_to(np.arange(n_samples - 1)[:, None] + 1, times.shape).copy()
        samp[:, 0] -= 1
        m = np.concatenate([np.ones((n_samples - 1, 1), bool), keep], axis=1)
        cam_times[ch] = np.append(times[m], ck[-1])
        cam_key[ch] = np.append(keys[m], True)
        cam_sample[ch] = np.append(samp[m], n_samples - 1)
    return Timing(kf, cam_times, cam_key, cam_sample)


