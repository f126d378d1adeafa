"""Straightforward devkit-based references, box by box, for tests and benchmarks (slow by design).

- keyframes: nuScenes' own ``scripts/export_2d_annotations_as_json.get_2d_boxes``;
- any camera frame: ``NuScenes.get_boxes`` then, per box, the same steps as that script (ego pose, calibration,
  corners in front, ``view_points``, convex hull intersected with the canvas).
"""
from __future__ import annotations

import numpy as np
from nuscenes.nuscenes import NuScenes
from nuscenes.scripts import export_2d_annotations_as_json as export_script
from nuscenes.utils.geometry_utils import view_points
from pyquaternion import Quaternion


def devkit_keyframe_boxes(nusc: NuScenes, sd_token: str) -> dict[str, tuple[float, float, float, float]]:
    """annotation token -> (x1, y1, x2, y2) from the devkit's export script for one camera keyframe."""
    export_script.nusc = nusc  # the script reads a module-level ``nusc``
    records = export_script.get_2d_boxes(sd_token, ["", "1", "2", "3", "4"])
    return {r["sample_annotation_token"]: tuple(r["bbox_corners"]) for r in records}


def devkit_frame_boxes(nusc: NuScenes, sd_token: str, image_size=(1600, 900)
                       ) -> dict[str, tuple[float, float, float, float] | None]:
    """annotation token (of the sample the frame belongs to) -> 2D box of ``get_boxes`` + per-box projection."""
    sd = nusc.get("sample_data", sd_token)
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    intrinsic = np.array(cs["camera_intrinsic"])
    out = {}
    for box in nusc.get_boxes(sd_token):
        box.translate(-np.array(pose["translation"]))
        box.rotate(Quaternion(pose["rotation"]).inverse)
        box.translate(-np.array(cs["translation"]))
        box.rotate(Quaternion(cs["rotation"]).inverse)
        corners = box.corners()
        corners = corners[:, corners[2, :] > 0]
        coords = view_points(corners, intrinsic, True).T[:, :2].tolist()
        try:
            out[box.token] = export_script.post_process_coords(coords, image_size)
        except AttributeError:  # the hull touches the canvas only along an edge or at a point: no area
            out[box.token] = None
    return out
