"""Ego-rotation compensation: the image motion that the camera's own rotation causes, from the nuScenes poses.

A vehicle turning at 20-30 deg/s (common in nuScenes) shifts every box in its cameras by tens of pixels per 12 Hz
frame, often more than the width of a pedestrian's box, so an IoU tracker cannot confirm new tracks and loses old
ones however good its motion model is. The camera's rotation between two frames is known exactly (ego pose x
calibrated sensor), and for a pure rotation the pixel motion does not depend on depth: points move by the
*infinite homography* ``H = K R_t^T R_{t-1} K^-1`` (``R``: camera-to-global rotation, ``K``: intrinsics). Warping
every track into the new frame with ``H`` before predicting removes the rotation and leaves the motion models the
object's own motion plus the (depth-dependent) translation parallax, as BoT-SORT's camera motion compensation does
from image registration.

The export writes ``<sequence>/camera.csv`` (:data:`CAMERA_COLUMNS`, one row per frame: camera-to-global
translation and rotation, intrinsics); :func:`frame_homographies` turns it into one homography per frame and
:func:`warp_boxes` moves boxes (and velocities, through the homography's Jacobian) with it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from trackssm_lib.geometry import normalize_quaternions, quaternion_multiply, quaternion_to_matrix

CAMERA_FILE = "camera.csv"
CAMERA_COLUMNS = ("frame", "tx", "ty", "tz", "qw", "qx", "qy", "qz", "fx", "fy", "cx", "cy")


class CameraPoseError(ValueError):
    """A sequence without (or with a malformed) ``camera.csv``."""


def camera_rows(ego_translation: np.ndarray, ego_rotation: np.ndarray, cam_translation: np.ndarray,
                cam_rotation: np.ndarray, intrinsic: np.ndarray) -> np.ndarray:
    """Per frame (F,): the camera's pose in the global frame and its intrinsics -> (F, 11) rows of
    :data:`CAMERA_COLUMNS` without the frame number (translation, rotation (w, x, y, z), fx, fy, cx, cy)."""
    r_ego = quaternion_to_matrix(ego_rotation)
    translation = np.einsum("fij,fj->fi", r_ego, np.asarray(cam_translation, np.float64)) + ego_translation
    rotation = normalize_quaternions(quaternion_multiply(ego_rotation, cam_rotation))
    k = np.asarray(intrinsic, dtype=np.float64).reshape(-1, 3, 3)
    return np.column_stack([translation, rotation, k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]])


def format_camera_csv(rows: np.ndarray) -> str:
    """``camera.csv`` text: a header and one line per frame (1-based), metres and quaternions with 9 decimals."""
    lines = [",".join(CAMERA_COLUMNS)]
    for f, row in enumerate(np.asarray(rows, dtype=np.float64), start=1):
        lines.append(f"{f}," + ",".join(f"{v:.9f}" for v in row))
    return "\n".join(lines) + "\n"


def read_camera_csv(seq_dir: str | Path, length: int | None = None) -> np.ndarray:
    """The (F, 11) rows of ``<seq_dir>/camera.csv`` for frames 1..F; ``length`` (seqLength) is checked when given."""
    path = Path(seq_dir) / CAMERA_FILE
    if not path.is_file():
        raise CameraPoseError(f"{path}: missing; ego-rotation compensation needs the camera poses that "
                              f"`python -m trackssm_lib prepare` writes (rerun it on this export: complete "
                              f"sequences only get the file added; `--interp linear2d` exports have none)")
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != ",".join(CAMERA_COLUMNS):
        raise CameraPoseError(f"{path}, line 1: expected the header {','.join(CAMERA_COLUMNS)}")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            values = [float(v) for v in line.split(",")]
        except ValueError:
            raise CameraPoseError(f"{path}, line {number}: not numbers: {line!r}") from None
        if len(values) != len(CAMERA_COLUMNS) or not np.isfinite(values).all():
            raise CameraPoseError(f"{path}, line {number}: expected {len(CAMERA_COLUMNS)} finite values")
        if values[0] != number - 1:
            raise CameraPoseError(f"{path}, line {number}: frame {values[0]:g}, expected {number - 1}")
        if values[8] <= 0 or values[9] <= 0 or abs(np.linalg.norm(values[4:8]) - 1) > 1e-3:
            raise CameraPoseError(f"{path}, line {number}: focal lengths must be positive and the rotation a unit "
                                  f"quaternion")
        rows.append(values[1:])
    if length is not None and len(rows) != length:
        raise CameraPoseError(f"{path}: {len(rows)} frames, but the sequence has {length}")
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(CAMERA_COLUMNS) - 1)


def intrinsic_matrices(rows: np.ndarray) -> np.ndarray:
    """(F, 3, 3) camera matrices from the fx, fy, cx, cy columns of :func:`read_camera_csv` rows."""
    fx, fy, cx, cy = (rows[:, i] for i in range(7, 11))
    k = np.zeros((len(rows), 3, 3))
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = fx, fy, cx, cy, 1.0
    return k


def rotation_homographies(rotation: np.ndarray, intrinsic: np.ndarray) -> np.ndarray:
    """(F, 3, 3): ``H[f]`` maps pixels of frame f-1 to frame f for a camera that only rotated (``H[0]`` = I).

    ``rotation`` (F, 4) camera-to-global quaternions, ``intrinsic`` (F, 3, 3).
    """
    r = quaternion_to_matrix(rotation)
    k = np.asarray(intrinsic, dtype=np.float64)
    h = np.tile(np.eye(3), (len(r), 1, 1))
    if len(r) > 1:
        rel = np.einsum("fji,fjk->fik", r[1:], r[:-1])  # R_t^T R_{t-1}
        h[1:] = k[1:] @ rel @ np.linalg.inv(k[:-1])
    return h


def frame_homographies(seq_dir: str | Path, length: int | None = None) -> np.ndarray:
    """Per-frame rotation homographies of an exported sequence (``camera.csv``); see :func:`rotation_homographies`."""
    rows = read_camera_csv(seq_dir, length)
    return rotation_homographies(rows[:, 3:7], intrinsic_matrices(rows))


def warp_points(h: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 2) through the homography ``h`` -> (warped (N, 2), Jacobians (N, 2, 2) at each point)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    hp = p @ h[:2, :2].T + h[:2, 2]
    s = p @ h[2, :2] + h[2, 2]
    s = np.where(s > 1e-9, s, np.nan)  # a point the rotation takes behind the camera stays where it was (below)
    warped = hp / s[:, None]
    jac = (h[None, :2, :2] - warped[:, :, None] * h[None, 2, :2][:, None, :]) / s[:, None, None]
    bad = ~np.isfinite(warped).all(axis=1)
    warped[bad] = p[bad]
    jac[bad] = np.eye(2)
    return warped, jac


def warp_boxes(h: np.ndarray, cxcywh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) cx, cy, w, h through ``h``: centres mapped, sizes scaled by the Jacobian's diagonal.

    Returns the warped boxes and the (N, 2, 2) Jacobians at their centres (to carry velocities along).
    """
    b = np.asarray(cxcywh, dtype=np.float64).reshape(-1, 4)
    centres, jac = warp_points(h, b[:, :2])
    sizes = b[:, 2:] * np.abs(np.stack([jac[:, 0, 0], jac[:, 1, 1]], axis=1))
    return np.column_stack([centres, sizes]), jac


# --------------------------------------------------------------------------------------- ego motion per frame
EGO_DIMS = 6  # camera translation (3, metres) and rotation vector (3, radians) from the previous frame


def rotation_vectors(r: np.ndarray) -> np.ndarray:
    """Axis-angle vectors (N, 3) of rotation matrices (N, 3, 3) (angle in radians; SciPy's conversion)."""
    return Rotation.from_matrix(np.asarray(r, dtype=np.float64).reshape(-1, 3, 3)).as_rotvec()


def camera_twists(translation: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """The camera's own motion into each frame, in the previous frame's camera coordinates (x right, y down, z
    forward): ``(F, 6)`` rows ``(tx, ty, tz, rx, ry, rz)``: ``R_{f-1}^T (T_f - T_{f-1})`` in metres and the rotation
    vector of ``R_{f-1}^T R_f`` in radians; row 0 (the first frame, no previous one) is zero.

    ``translation`` (F, 3) and ``rotation`` (F, 4, w x y z) are the camera-to-global poses of ``camera.csv``. For a
    static object the image motion between two frames follows from this and the object's depth alone, which a
    camera that moves at 0-12 m/s makes the largest part of most boxes' motion.
    """
    t = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
    r = quaternion_to_matrix(np.asarray(rotation, dtype=np.float64).reshape(-1, 4))
    out = np.zeros((len(t), EGO_DIMS))
    if len(t) > 1:
        out[1:, :3] = np.einsum("fji,fj->fi", r[:-1], t[1:] - t[:-1])
        out[1:, 3:] = rotation_vectors(np.einsum("fji,fjk->fik", r[:-1], r[1:]))
    return out


def frame_twists(seq_dir: str | Path, length: int | None = None) -> np.ndarray:
    """Per-frame camera twists of an exported sequence (``camera.csv``; :func:`camera_twists`), (F, 6)."""
    rows = read_camera_csv(seq_dir, length)
    return camera_twists(rows[:, :3], rows[:, 3:7])


def mirror_twists(twists: np.ndarray) -> np.ndarray:
    """The twists of the horizontally mirrored world (x -> -x): ``(-tx, ty, tz, rx, -ry, -rz)`` (a rotation vector
    is an axial vector, so it changes sign with the mirror except along the mirror's normal)."""
    twists = np.asarray(twists)
    return twists * np.array([-1.0, 1.0, 1.0, 1.0, -1.0, -1.0], dtype=twists.dtype)


__all__ = ["CAMERA_COLUMNS", "CAMERA_FILE", "CameraPoseError", "EGO_DIMS", "camera_rows", "camera_twists",
           "format_camera_csv", "frame_homographies", "frame_twists", "intrinsic_matrices", "mirror_twists",
           "read_camera_csv", "rotation_homographies", "rotation_vectors", "warp_boxes", "warp_points"]
