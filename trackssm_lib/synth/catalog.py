"""Fixed vocabularies of the synthetic dataset: categories, attributes, visibility, object sizes and colours."""
from __future__ import annotations

import hashlib

# (name, lidarseg-style index, short description written for this generator)
CATEGORIES: tuple[tuple[str, int, str], ...] = (
    ("animal", 1, "Animals of any size."),
    ("human.pedestrian.adult", 2, "Adult pedestrian."),
    ("human.pedestrian.child", 3, "Child pedestrian."),
    ("human.pedestrian.construction_worker", 4, "Person working at a construction site."),
    ("human.pedestrian.personal_mobility", 5, "Person on a small personal mobility device (scooter, skateboard)."),
    ("human.pedestrian.police_officer", 6, "Police officer on foot."),
    ("human.pedestrian.stroller", 7, "Stroller or pram, with or without a child."),
    ("human.pedestrian.wheelchair", 8, "Wheelchair, with its occupant."),
    ("movable_object.barrier", 9, "Temporary road barrier."),
    ("movable_object.debris", 10, "Movable debris on the road or sidewalk."),
    ("movable_object.pushable_pullable", 11, "Objects pushed or pulled by a person (carts, bins)."),
    ("movable_object.trafficcone", 12, "Traffic cone."),
    ("static_object.bicycle_rack", 13, "Bicycle rack, including the bicycles parked in it."),
    ("vehicle.bicycle", 14, "Human or electric powered two-wheeler."),
    ("vehicle.bus.bendy", 15, "Articulated bus."),
    ("vehicle.bus.rigid", 16, "Rigid bus."),
    ("vehicle.car", 17, "Passenger car, van, SUV."),
    ("vehicle.construction", 18, "Construction vehicle."),
    ("vehicle.emergency.ambulance", 19, "Ambulance."),
    ("vehicle.emergency.police", 20, "Police vehicle."),
    ("vehicle.motorcycle", 21, "Motorcycle or scooter."),
    ("vehicle.trailer", 22, "Trailer of a truck, car or bike."),
    ("vehicle.truck", 23, "Truck, lorry or pick-up."),
)
CAT_NAMES: tuple[str, ...] = tuple(c[0] for c in CATEGORIES)
CAT_INDEX: dict[str, int] = {n: i for i, n in enumerate(CAT_NAMES)}

ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("vehicle.moving", "Vehicle is moving."),
    ("vehicle.stopped", "Vehicle with a driver is stationary but about to move."),
    ("vehicle.parked", "Vehicle is parked with no immediate intent to move."),
    ("cycle.with_rider", "A rider is on the bicycle or motorcycle."),
    ("cycle.without_rider", "No rider on the bicycle or motorcycle."),
    ("pedestrian.sitting_lying_down", "The person is sitting or lying down."),
    ("pedestrian.standing", "The person is standing."),
    ("pedestrian.moving", "The person is moving."),
)
ATTR_INDEX: dict[str, int] = {n: i for i, (n, _) in enumerate(ATTRIBUTES)}

VISIBILITY: tuple[tuple[str, str, str], ...] = (
    ("1", "v0-40", "visibility of whole object is between 0 and 40%"),
    ("2", "v40-60", "visibility of whole object is between 40 and 60%"),
    ("3", "v60-80", "visibility of whole object is between 60 and 80%"),
    ("4", "v80-100", "visibility of whole object is between 80 and 100%"),
)

# Mean and standard deviation of (width, length, height) in metres, per category.
SIZES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "animal": ((0.35, 0.85, 0.6), (0.08, 0.2, 0.1)),
    "human.pedestrian.adult": ((0.67, 0.73, 1.76), (0.07, 0.1, 0.09)),
    "human.pedestrian.child": ((0.5, 0.52, 1.32), (0.05, 0.06, 0.12)),
    "human.pedestrian.construction_worker": ((0.7, 0.76, 1.78), (0.07, 0.1, 0.08)),
    "human.pedestrian.personal_mobility": ((0.62, 1.2, 1.7), (0.08, 0.15, 0.1)),
    "human.pedestrian.police_officer": ((0.72, 0.74, 1.8), (0.06, 0.08, 0.07)),
    "human.pedestrian.stroller": ((0.62, 0.96, 1.12), (0.05, 0.1, 0.08)),
    "human.pedestrian.wheelchair": ((0.72, 1.1, 1.3), (0.05, 0.1, 0.08)),
    "movable_object.barrier": ((2.5, 0.52, 1.0), (0.3, 0.1, 0.08)),
    "movable_object.debris": ((0.6, 1.0, 0.45), (0.2, 0.3, 0.1)),
    "movable_object.pushable_pullable": ((0.62, 0.72, 1.05), (0.1, 0.1, 0.1)),
    "movable_object.trafficcone": ((0.42, 0.42, 1.05), (0.04, 0.04, 0.1)),
    "static_object.bicycle_rack": ((1.6, 6.5, 1.2), (0.3, 1.5, 0.1)),
    "vehicle.bicycle": ((0.6, 1.72, 1.3), (0.05, 0.08, 0.08)),
    "vehicle.bus.bendy": ((2.95, 17.8, 3.4), (0.05, 0.6, 0.1)),
    "vehicle.bus.rigid": ((2.95, 11.2, 3.5), (0.08, 0.8, 0.15)),
    "vehicle.car": ((1.95, 4.62, 1.72), (0.1, 0.3, 0.15)),
    "vehicle.construction": ((2.8, 6.6, 3.2), (0.3, 1.2, 0.4)),
    "vehicle.emergency.ambulance": ((2.3, 6.4, 2.6), (0.1, 0.4, 0.15)),
    "vehicle.emergency.police": ((2.0, 4.95, 1.75), (0.08, 0.2, 0.1)),
    "vehicle.motorcycle": ((0.78, 2.1, 1.48), (0.07, 0.15, 0.1)),
    "vehicle.trailer": ((2.9, 12.0, 3.8), (0.15, 2.0, 0.3)),
    "vehicle.truck": ((2.5, 6.9, 2.85), (0.2, 1.4, 0.4)),
}

# Render colours (RGB) per category family.
COLOURS: dict[str, tuple[int, int, int]] = {
    "vehicle.car": (200, 40, 40),
    "vehicle.truck": (230, 130, 20),
    "vehicle.bus.rigid": (230, 200, 20),
    "vehicle.bus.bendy": (210, 180, 30),
    "vehicle.trailer": (150, 90, 40),
    "vehicle.motorcycle": (160, 40, 200),
    "vehicle.bicycle": (40, 200, 200),
    "vehicle.construction": (240, 170, 0),
    "vehicle.emergency.police": (30, 30, 160),
    "vehicle.emergency.ambulance": (240, 240, 240),
    "human.pedestrian.adult": (30, 110, 230),
    "human.pedestrian.child": (60, 160, 250),
    "human.pedestrian.construction_worker": (250, 120, 0),
    "human.pedestrian.police_officer": (20, 40, 120),
    "human.pedestrian.personal_mobility": (100, 100, 230),
    "human.pedestrian.stroller": (120, 200, 120),
    "human.pedestrian.wheelchair": (120, 120, 200),
    "movable_object.barrier": (220, 220, 220),
    "movable_object.trafficcone": (255, 90, 0),
    "movable_object.debris": (110, 80, 60),
    "movable_object.pushable_pullable": (90, 140, 90),
    "static_object.bicycle_rack": (90, 90, 110),
    "animal": (140, 100, 60),
}

VEHICLE_ATTR_CATS = {"vehicle.car", "vehicle.truck", "vehicle.bus.rigid", "vehicle.bus.bendy", "vehicle.trailer",
                     "vehicle.construction", "vehicle.emergency.police", "vehicle.emergency.ambulance"}
CYCLE_CATS = {"vehicle.bicycle", "vehicle.motorcycle"}
PED_ATTR_CATS = {"human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.construction_worker",
                 "human.pedestrian.police_officer"}


def fixed_token(*parts: object) -> str:
    """A 32-hex token that depends only on `parts` (for vocabulary records shared across seeds)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


CATEGORY_TOKENS: tuple[str, ...] = tuple(fixed_token("category", n) for n in CAT_NAMES)
ATTRIBUTE_TOKENS: tuple[str, ...] = tuple(fixed_token("attribute", n) for n, _ in ATTRIBUTES)


def category_records() -> list[dict]:
    return [{"token": CATEGORY_TOKENS[i], "name": n, "description": d, "index": idx}
            for i, (n, idx, d) in enumerate(CATEGORIES)]


def attribute_records() -> list[dict]:
    return [{"token": ATTRIBUTE_TOKENS[i], "name": n, "description": d} for i, (n, d) in enumerate(ATTRIBUTES)]


def visibility_records() -> list[dict]:
    return [{"description": d, "token": t, "level": lv} for t, lv, d in VISIBILITY]
