"""Vectorised rigid-body helpers on quaternions (w, x, y, z) and oriented 3D boxes.

Conventions follow nuScenes/pyquaternion: a quaternion rotates a vector by its rotation matrix; box sizes are
(width, length, height) with length along the box's x axis; rotations are normalised before use.
"""
from __future__ import annotations

import numpy as np

# Box corner signs in nuScenes' order (`Box.corners`): x (length), y (width), z (height).
_CORNER_SIGNS = np.array(
    [[1, 1, 1, 1, -1, -1, -1, -1],
     [1, -1, -1, 1, 1, -1, -1, 1],
     [1, 1, -1, -1, 1, 1, -1, -1]],
    dtype=np.float64,
).T  # (8, 3)

# The 12 edges of a box as pairs of corner indices (4 front-face, 4 back-face, 4 connecting).
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)


def normalize_quaternions(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) given as (w, x, y, z)."""
    w, x, y, z = np.moveaxis(normalize_quaternions(q), -1, 0)
    m = np.empty(w.shape + (3, 3))
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - w * z)
    m[..., 0, 2] = 2 * (x * z + w * y)
    m[..., 1, 0] = 2 * (x * y + w * z)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - w * x)
    m[..., 2, 0] = 2 * (x * z - w * y)
    m[..., 2, 1] = 2 * (y * z + w * x)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton products ``a * b`` of quaternions (..., 4) as (w, x, y, z): the rotation ``b`` then ``a``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def slerp(q0: np.ndarray, q1: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation along the shorter arc, row by row (same formula as pyquaternion)."""
    q0 = normalize_quaternions(q0).copy()
    q1 = normalize_quaternions(q1)
    amount = np.clip(np.asarray(amount, dtype=np.float64), 0.0, 1.0)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    flip = dot < 0.0
    q0 = np.where(flip, -q0, q0)
    dot = np.abs(dot)
    near = dot > 0.9995
    theta0 = np.arccos(np.clip(dot, -1.0, 1.0))
    sin0 = np.where(near, 1.0, np.sin(theta0))
    theta = theta0 * amount
    s0 = np.cos(theta) - dot * np.sin(theta) / sin0
    s1 = np.sin(theta) / sin0
    out = np.where(near, q0 + amount * (q1 - q0), s0 * q0 + s1 * q1)
    return normalize_quaternions(out)


def box_corners(centers: np.ndarray, sizes: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Corners (N, 8, 3) of boxes with centres (N, 3), sizes wlh (N, 3) and rotations (N, 3, 3)."""
    w, l, h = sizes[:, 0], sizes[:, 1], sizes[:, 2]
    half = np.stack([l, w, h], axis=-1)[:, None, :] / 2.0  # (N, 1, 3)
    local = _CORNER_SIGNS[None] * half  # (N, 8, 3)
    return np.einsum("nij,nkj->nki", rotations, local) + centers[:, None, :]


def global_to_camera(points: np.ndarray, ego_translation: np.ndarray, ego_rotation: np.ndarray,
                     cam_translation: np.ndarray, cam_rotation: np.ndarray) -> np.ndarray:
    """Transform points (N, K, 3) from the global frame into each row's camera frame.

    Pose and calibration are per row ((N, 3), (N, 3, 3) rotation matrices) or shared ((3,), (3, 3)).
    """
    ego_t = np.broadcast_to(ego_translation, (points.shape[0], 3))
    cam_t = np.broadcast_to(cam_translation, (points.shape[0], 3))
    ego_r = np.broadcast_to(ego_rotation, (points.shape[0], 3, 3))
    cam_r = np.broadcast_to(cam_rotation, (points.shape[0], 3, 3))
    in_ego = np.einsum("nji,nkj->nki", ego_r, points - ego_t[:, None, :])  # R^T (p - t)
    return np.einsum("nji,nkj->nki", cam_r, in_ego - cam_t[:, None, :])
