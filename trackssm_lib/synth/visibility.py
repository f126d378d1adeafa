"""Occlusion-based visibility as seen from the ego (all cameras together) and plausible lidar / radar counts."""
from __future__ import annotations

import numpy as np

from .quat import wrap_angle

SENSOR_HEIGHT = 1.84
N_RAYS = 10


def box_corners_2d(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, w: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Ground-plane corners (..., 4, 2) of boxes (length along the yaw direction)."""
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    dl = np.array([0.5, 0.5, -0.5, -0.5]) * l[..., None]
    dw = np.array([0.5, -0.5, -0.5, 0.5]) * w[..., None]
    return np.stack([x[..., None] + dl * c - dw * s, y[..., None] + dl * s + dw * c], axis=-1)


def visible_fraction(x: np.ndarray, y: np.ndarray, yaw: np.ndarray, wlh: np.ndarray, present: np.ndarray,
                     sensor_xy: np.ndarray) -> np.ndarray:
    """Fraction (n, T) of each box visible from the sensor at each keyframe: rays spread over the box's angular
    extent are tested against the boxes in front of it; an occluder hides the part of the box below its top's
    shadow line (sensor at SENSOR_HEIGHT)."""
    n, T = x.shape
    vis = np.zeros((n, T))
    f = (np.arange(N_RAYS) + 0.5) / N_RAYS
    for t in range(T):
        idx = np.nonzero(present[:, t])[0]
        if idx.size == 0:
            continue
        cx, cy = x[idx, t] - sensor_xy[t, 0], y[idx, t] - sensor_xy[t, 1]
        cor = box_corners_2d(cx, cy, yaw[idx, t], wlh[idx, 0], wlh[idx, 1])
        alpha = np.arctan2(cy, cx)
        d = wrap_angle(np.arctan2(cor[..., 1], cor[..., 0]) - alpha[:, None])
        dmin, dmax = d.min(1), d.max(1)
        r_c = np.hypot(cx, cy)
        r_near = np.maximum(np.hypot(cor[..., 0], cor[..., 1]).min(1), 0.5)
        h = wlh[idx, 2]
        theta = alpha[:, None] + dmin[:, None] + (dmax - dmin)[:, None] * f[None, :]  # (m, K)
        rel = wrap_angle(theta[:, :, None] - alpha[None, None, :])  # (m, K, m)
        inside = (rel >= dmin[None, None, :]) & (rel <= dmax[None, None, :])
        closer = (r_c[None, :] + 0.3 < r_c[:, None])  # (i, j): j in front of i
        z = SENSOR_HEIGHT + (h[None, :] - SENSOR_HEIGHT) * r_c[:, None] / r_near[None, :]
        hidden = np.where(closer, np.clip(z / h[:, None], 0.0, 1.0), 0.0)  # (i, j)
        occ = np.where(inside, hidden[:, None, :], 0.0).max(axis=2)  # (m, K)
        vis[idx, t] = 1.0 - occ.mean(axis=1)
    return vis


def visibility_token(frac: np.ndarray) -> np.ndarray:
    """nuScenes visibility level '1'..'4' (0-40, 40-60, 60-80, 80-100 %) as ints 1..4."""
    return 1 + (frac >= 0.4).astype(int) + (frac >= 0.6).astype(int) + (frac >= 0.8).astype(int)


def lidar_points(rng: np.random.Generator, dist: np.ndarray, wlh: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Plausible lidar point counts: proportional to the visible surface, decreasing with distance squared."""
    area = np.maximum(wlh[..., 0], wlh[..., 1]) * wlh[..., 2] * 0.8 + wlh[..., 0] * wlh[..., 1] * 0.25
    lam = 1600.0 * area * vis / np.maximum(dist, 2.0) ** 2 * rng.lognormal(0.0, 0.35, dist.shape)
    pts = np.floor(lam).astype(int)
    pts[(vis < 0.1) & (rng.random(dist.shape) < 0.5)] = 0
    return pts


def radar_points(rng: np.random.Generator, dist: np.ndarray, is_vehicle: np.ndarray, moving: np.ndarray) -> np.ndarray:
    lam = np.where(is_vehicle, np.clip(3.5 - dist / 18.0, 0.0, None) * (1.0 + moving), 0.15)
    return rng.poisson(lam)
