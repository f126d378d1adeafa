"""Vectorised 3D box -> 2D image box projection for many boxes at once.

Each box carries its own ego pose and camera calibration, so the boxes of many camera frames project in one call.

Clip modes:
- ``exact`` (default): the box is clipped against the camera's near plane (z = ``NEAR_PLANE_M``) before
  projection, so a box straddling the camera plane keeps the part in front of it; the convex hull of the
  projected polytope is then intersected with the image and its bounds are the 2D box.
- ``devkit``: reproduces nuScenes' ``scripts/export_2d_annotations_as_json.py``: corners behind the camera
  (z <= 0) are dropped, the others projected; convex hull of those points intersected with the canvas.
Boxes with no area after clipping are invalid.
"""
from __future__ import annotations

import warnings

import numpy as np
import shapely

from trackssm_lib.constants import IMAGE_HEIGHT, IMAGE_WIDTH
from trackssm_lib.geometry import BOX_EDGES, box_corners, global_to_camera, quaternion_to_matrix

CLIP_MODES = ("exact", "devkit")
NEAR_PLANE_M = 0.01


def project_boxes(centers: np.ndarray, sizes: np.ndarray, rotations: np.ndarray,
                  ego_translation: np.ndarray, ego_rotation: np.ndarray,
                  cam_translation: np.ndarray, cam_rotation: np.ndarray, intrinsic: np.ndarray,
                  clip: str = "exact", image_size: tuple[int, int] = (IMAGE_WIDTH, IMAGE_HEIGHT),
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Project global 3D boxes into their camera frames.

    centers (N, 3), sizes (N, 3) as wlh, rotations (N, 4) as wxyz; pose/calibration per box ((N, 3), (N, 4),
    (N, 3, 3)) or shared ((3,), (4,), (3, 3)). Returns boxes (N, 4) as x1, y1, x2, y2 in pixels and a validity
    mask (N,) (False: not in the image or no area); invalid rows hold NaN.
    """
    if clip not in CLIP_MODES:
        raise ValueError(f"unknown clip mode {clip!r}; expected one of {CLIP_MODES}")
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 3)
    n = centers.shape[0]
    boxes, valid = np.full((n, 4), np.nan), np.zeros(n, dtype=bool)
    if n == 0:
        return boxes, valid
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 3)
    rows = lambda a, d: np.broadcast_to(np.asarray(a, dtype=np.float64), (n,) + d)  # noqa: E731
    ego_t, ego_r = rows(ego_translation, (3,)), quaternion_to_matrix(rows(ego_rotation, (4,)))
    cam_t, cam_r = rows(cam_translation, (3,)), quaternion_to_matrix(rows(cam_rotation, (4,)))
    intrinsic = rows(intrinsic, (3, 3))
    # Cull boxes whose bounding sphere lies outside the viewing frustum: they cannot reach the image in either
    # mode (the devkit's hull of the corners in front is inside the box), so results are unchanged.
    centre_cam = global_to_camera(centers[:, None, :], ego_t, ego_r, cam_t, cam_r)[:, 0, :]
    radius = 0.5 * np.linalg.norm(sizes, axis=1)
    near = in_frustum(centre_cam, radius, intrinsic, image_size)
    if not near.any():
        return boxes, valid
    idx = np.flatnonzero(near)
    corners = box_corners(centers[idx], sizes[idx], quaternion_to_matrix(
        np.asarray(rotations, dtype=np.float64).reshape(-1, 4)[idx]))
    cam = global_to_camera(corners, ego_t[idx], ego_r[idx], cam_t[idx], cam_r[idx])
    points, keep = clip_to_near_plane(cam) if clip == "exact" else (cam, cam[..., 2] > 0)
    uv = pinhole(points, intrinsic[idx], keep)
    boxes[idx], valid[idx] = hull_bounds_in_image(uv, keep, image_size)
    return boxes, valid


def in_frustum(centers: np.ndarray, radius: np.ndarray, intrinsic: np.ndarray,
               image_size: tuple[int, int]) -> np.ndarray:
    """Whether spheres (camera frame) may intersect the camera's viewing frustum (z > 0, inside the image)."""
    width, height = image_size
    fx, fy, cx, cy = intrinsic[:, 0, 0], intrinsic[:, 1, 1], intrinsic[:, 0, 2], intrinsic[:, 1, 2]
    x, y, z = centers.T
    ok = z > -radius
    for a, b, coord in ((fx, cx, x), (-fx, width - cx, x), (fy, cy, y), (-fy, height - cy, y)):
        ok &= (a * coord + b * z) >= -radius * np.hypot(a, b)  # signed distance to a side plane >= -radius
    return ok


def clip_to_near_plane(cam_corners: np.ndarray, near: float = NEAR_PLANE_M) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of each box clipped to z >= near: corners in front plus edge/plane intersections.

    Returns points (N, 20, 3) and a mask (N, 20) of the points that are vertices of the clipped polytope.
    """
    a = cam_corners[:, BOX_EDGES[:, 0]]
    b = cam_corners[:, BOX_EDGES[:, 1]]
    za, zb = a[..., 2] - near, b[..., 2] - near
    crossing = (za * zb) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crossing, za / (za - zb), 0.0)
    cut = a + t[..., None] * (b - a)
    cut[..., 2] = np.where(crossing, near, cut[..., 2])
    points = np.concatenate([cam_corners, cut], axis=1)
    keep = np.concatenate([cam_corners[..., 2] >= near, crossing], axis=1)
    return points, keep


def pinhole(points: np.ndarray, intrinsic: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N, K, 2) of camera-frame points (N, K, 3); rows not kept are NaN."""
    proj = np.einsum("nij,nkj->nki", intrinsic, points)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = proj[..., :2] / proj[..., 2:3]
    uv[~keep] = np.nan
    return uv


def hull_bounds_in_image(uv: np.ndarray, keep: np.ndarray, image_size: tuple[int, int]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of (convex hull of each row's kept points) intersected with the image canvas."""
    width, height = image_size
    n = uv.shape[0]
    boxes = np.full((n, 4), np.nan)
    any_kept = keep.any(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (nothing in front of the camera)
        lo = np.nanmin(np.where(any_kept[:, None, None], uv, 0.0), axis=1)
        hi = np.nanmax(np.where(any_kept[:, None, None], uv, 0.0), axis=1)
    inside = any_kept & (lo[:, 0] >= 0) & (lo[:, 1] >= 0) & (hi[:, 0] <= width) & (hi[:, 1] <= height)
    disjoint = ~any_kept | (hi[:, 0] < 0) | (hi[:, 1] < 0) | (lo[:, 0] > width) | (lo[:, 1] > height)
    boxes[inside] = np.concatenate([lo[inside], hi[inside]], axis=1)
    straddle = np.flatnonzero(~inside & ~disjoint)
    if straddle.size:
        boxes[straddle] = _clip_hulls(uv[straddle], keep[straddle], width, height)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes[~valid] = np.nan
    return boxes, valid


def _clip_hulls(uv: np.ndarray, keep: np.ndarray, width: float, height: float) -> np.ndarray:
    rows, cols = np.nonzero(keep)
    hulls = shapely.convex_hull(shapely.multipoints(uv[rows, cols], indices=rows))
    clipped = shapely.intersection(hulls, shapely.box(0.0, 0.0, width, height))
    return shapely.bounds(clipped)

