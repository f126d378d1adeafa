"""Fixed facts about nuScenes and this project's class scheme.

The class mapping is the nuScenes tracking benchmark's: every other category (strollers, wheelchairs,
personal mobility, emergency and construction vehicles, animals, movable and static objects) is not tracked.
"""
from __future__ import annotations

CAMERAS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT",
)
# The six cameras as nuScenes shows them: front row left to right, back row as seen from behind the car.
CAMERA_LAYOUT: tuple[tuple[str, ...], ...] = (
    ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"),
    ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"),
)
IMAGE_WIDTH = 1600
IMAGE_HEIGHT = 900
CAMERA_FPS = 12
KEYFRAME_HZ = 2

CLASS_NAMES: tuple[str, ...] = ("car", "truck", "bus", "trailer", "pedestrian", "motorcycle", "bicycle")
CLASS_IDS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# nuScenes category name -> tracking class (exact names, no prefix matching: strollers, wheelchairs and
# personal mobility are human.pedestrian.* but are NOT pedestrians for tracking).
CATEGORY_TO_CLASS: dict[str, str] = {
    "vehicle.car": "car",
    "vehicle.truck": "truck",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.trailer": "trailer",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "vehicle.motorcycle": "motorcycle",
    "vehicle.bicycle": "bicycle",
}


def tracking_class(category_name: str) -> str | None:
    """The tracking class of a nuScenes category, or None when the category is not tracked."""
    return CATEGORY_TO_CLASS.get(category_name)
