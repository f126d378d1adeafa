"""Keyframe camera images: sky, ground, road surface with markings and the 3D boxes as shaded solids, all
drawn with the same projection the devkit uses (global -> ego pose -> camera -> intrinsics), with geometry
behind the camera clipped at a near plane (never projected naively)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .catalog import CAT_NAMES, COLOURS
from .quat import rot_z
from .sensors import IMAGE_H, IMAGE_W, Calib
from .world import CROSS_HALF, LANE, ROAD_HALF, SIDEWALK, World

Z_NEAR = 0.3
SUN = np.array([0.35, 0.3, 0.89]) / np.linalg.norm([0.35, 0.3, 0.89])
# faces of a box as corner indices (corners: x=+-l/2, y=+-w/2, z=0/h; see _box_corners), outward normals
_FACES = np.array([[0, 1, 2, 3], [4, 7, 6, 5], [0, 4, 5, 1], [3, 2, 6, 7], [0, 3, 7, 4], [1, 5, 6, 2]])
_SKY_CACHE: dict[int, Image.Image] = {}


def _sky() -> Image.Image:
    if 0 not in _SKY_CACHE:
        v = np.linspace(0.0, 1.0, IMAGE_H)[:, None, None]
        top, bottom = np.array([95, 140, 200]), np.array([205, 220, 235])
        row = (top * (1 - v) + bottom * v).astype(np.uint8)
        _SKY_CACHE[0] = Image.fromarray(np.broadcast_to(row, (IMAGE_H, IMAGE_W, 3)).copy(), "RGB")
    return _SKY_CACHE[0]


def _strip(world: World, rid: int, s: np.ndarray, lat0: float, lat1: float) -> np.ndarray:
    """A ground polygon (m, 3) between lateral offsets lat0 and lat1 along route rid over progress s."""
    x, y, h = world.routes.eval(np.full(s.shape, rid), s)
    nx, ny = -np.sin(h), np.cos(h)
    a = np.stack([x + lat0 * nx, y + lat0 * ny], 1)
    b = np.stack([x + lat1 * nx, y + lat1 * ny], 1)[::-1]
    pts = np.concatenate([a, b])
    return np.concatenate([pts, np.zeros((len(pts), 1))], 1)


def _dashes(world: World, rid: int, s0: float, s1: float, lat: float, dash: float, gap: float,
            width: float = 0.15) -> np.ndarray:
    """Marking quads (n, 4, 3) along a route: dashes of length `dash` separated by `gap` (gap 0: solid pieces)."""
    starts = np.arange(s0, s1, dash + gap)
    ends = starts + dash
    quads = []
    for s_a, s_b in ((starts, ends),):
        xa, ya, ha = world.routes.eval(np.full(s_a.shape, rid), s_a)
        xb, yb, hb = world.routes.eval(np.full(s_b.shape, rid), s_b)
        la, lb = lat - width / 2, lat + width / 2
        p = [
            (xa - la * np.sin(ha), ya + la * np.cos(ha)), (xb - la * np.sin(hb), yb + la * np.cos(hb)),
            (xb - lb * np.sin(hb), yb + lb * np.cos(hb)), (xa - lb * np.sin(ha), ya + lb * np.cos(ha)),
        ]
        q = np.stack([np.stack(c, -1) for c in p], 1)
        quads.append(np.concatenate([q, np.zeros(q.shape[:2] + (1,))], -1))
    return np.concatenate(quads)


class SceneRenderer:
    """Static ground geometry of a scene (built once) and per-frame rendering."""

    def __init__(self, world: World, s_range: tuple[float, float]) -> None:
        s = np.arange(s_range[0] - 120.0, s_range[1] + 120.0, 2.0)
        self.ground: list[tuple[np.ndarray, tuple[int, int, int]]] = []
        side_col, road_col = (168, 166, 160), (82, 84, 88)
        for d in (-1, 1):
            self.ground.append((_strip(world, 0, s, d * ROAD_HALF, d * SIDEWALK[1]), side_col))
        if world.cross_route is not None:
            cs = np.arange(-150.0, 150.5, 2.0)
            for d in (-1, 1):
                self.ground.append((_strip(world, world.cross_route, cs, d * CROSS_HALF, d * (CROSS_HALF + 2.5)),
                                    side_col))
        self.ground.append((_strip(world, 0, s, -ROAD_HALF, ROAD_HALF), road_col))
        if world.cross_route is not None:
            self.ground.append((_strip(world, world.cross_route, cs, -CROSS_HALF, CROSS_HALF), road_col))
        s0, s1 = float(s[0]), float(s[-1])
        centre = (235, 200, 40) if world.side < 0 else (235, 235, 235)
        marks = [
            (_dashes(world, 0, s0, s1, 0.12, 8.0, 0.0), centre),
            (_dashes(world, 0, s0, s1, -0.12, 8.0, 0.0), centre),
            (_dashes(world, 0, s0, s1, LANE, 3.0, 6.0), (235, 235, 235)),
            (_dashes(world, 0, s0, s1, -LANE, 3.0, 6.0), (235, 235, 235)),
            (_dashes(world, 0, s0, s1, 2 * LANE, 8.0, 0.0), (235, 235, 235)),
            (_dashes(world, 0, s0, s1, -2 * LANE, 8.0, 0.0), (235, 235, 235)),
        ]
        if world.cross_route is not None:
            marks.append((_dashes(world, world.cross_route, -150.0, 150.0, 0.0, 3.0, 6.0), (235, 235, 235)))
            # zebra crossings over the cross road on both sides of the junction
            zebra = []
            for sc in (ROAD_HALF + 1.2, -(ROAD_HALF + 3.2)):
                for lat in np.arange(-CROSS_HALF + 0.5, CROSS_HALF, 1.2):
                    zebra.append(_dashes(world, world.cross_route, sc, sc + 1.9, lat, 2.0, 0.0, width=0.55))
            marks.append((np.concatenate(zebra), (240, 240, 240)))
        self.marks = marks

    def render(self, path: Path, calib: Calib, ego_xy: tuple[float, float], ego_yaw: float,
               boxes: list[tuple[np.ndarray, np.ndarray, float, int]]) -> None:
        """Draw one camera image; boxes are (centre xyz, wlh, yaw, category index) in the global frame."""
        r_ego = rot_z(ego_yaw)
        r_gc = r_ego @ calib.rotation  # camera -> global
        cam_pos = np.array([ego_xy[0], ego_xy[1], 0.0]) + r_ego @ calib.translation
        r_wc = r_gc.T
        k = calib.intrinsic
        img = _sky().copy()
        draw = ImageDraw.Draw(img)

        def to_cam(p: np.ndarray) -> np.ndarray:
            return (p - cam_pos) @ r_wc.T

        def draw_poly(pc: np.ndarray, fill, outline=None) -> None:
            pc = _clip_near(pc)
            if pc is None:
                return
            uv = pc[:, :2] / pc[:, 2:3] * np.array([k[0, 0], k[1, 1]]) + np.array([k[0, 2], k[1, 2]])
            uv = np.clip(uv, -1e5, 1e5)
            draw.polygon([tuple(p) for p in uv.tolist()], fill=fill, outline=outline)

        # terrain: a large square around the camera
        span = 1500.0
        terr = np.array([[-span, -span, 0], [span, -span, 0], [span, span, 0], [-span, span, 0]]) + \
            np.array([cam_pos[0], cam_pos[1], 0.0])
        draw_poly(to_cam(terr), (112, 128, 98))
        for poly, col in self.ground:
            near = np.hypot(poly[:, 0] - cam_pos[0], poly[:, 1] - cam_pos[1]).min()
            if near < 400:
                draw_poly(to_cam(poly), col)
        for quads, col in self.marks:
            d = np.hypot(quads[:, 0, 0] - cam_pos[0], quads[:, 0, 1] - cam_pos[1])
            qc = to_cam(quads[d < 120.0])
            for q in qc:
                if q[:, 2].max() > Z_NEAR:
                    draw_poly(q, col)
        # boxes: visible faces of all boxes, far to near
        faces = []
        for centre, wlh, yaw, cat in boxes:
            corners = _box_corners(centre, wlh, yaw)
            col = np.array(COLOURS.get(CAT_NAMES[cat], (200, 200, 200)), dtype=float)
            cc = to_cam(corners)
            if cc[:, 2].max() <= Z_NEAR:
                continue
            ctr = corners.mean(0)
            for f in _FACES:
                fc = corners[f]
                fcen = fc.mean(0)
                nrm = fcen - ctr
                # outward normal from the face's plane: the face centre relative to the box centre
                nrm = _face_normal(fc, nrm)
                if np.dot(nrm, cam_pos - fcen) <= 0:
                    continue
                shade = 0.55 + 0.45 * max(0.0, float(np.dot(nrm, SUN)))
                fill = tuple(int(v) for v in np.clip(col * shade, 0, 255))
                edge = tuple(int(v) for v in np.clip(col * shade * 0.55, 0, 255))
                faces.append((float(np.linalg.norm(fcen - cam_pos)), cc[f], fill, edge))
        faces.sort(key=lambda e: -e[0])
        for _, pc, fill, edge in faces:
            draw_poly(pc, fill, edge)
        img.save(path, "JPEG", quality=85)


def _face_normal(fc: np.ndarray, outward_hint: np.ndarray) -> np.ndarray:
    n = np.cross(fc[1] - fc[0], fc[2] - fc[0])
    n /= np.linalg.norm(n) + 1e-12
    return n if np.dot(n, outward_hint) >= 0 else -n


def _box_corners(centre: np.ndarray, wlh: np.ndarray, yaw: float) -> np.ndarray:
    """8 corners (global) of a box whose centre is at `centre` (z = half height)."""
    w, l, h = wlh
    x = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * l / 2
    y = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
    z = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * h / 2
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([centre[0] + c * x - s * y, centre[1] + s * x + c * y, centre[2] + z], 1)


def _clip_near(pc: np.ndarray) -> np.ndarray | None:
    """Clip a polygon (m, 3) in camera coordinates to z >= Z_NEAR (Sutherland-Hodgman, one plane)."""
    z = pc[:, 2]
    inside = z >= Z_NEAR
    if inside.all():
        return pc
    if not inside.any():
        return None
    out = []
    m = len(pc)
    for i in range(m):
        a, b = pc[i], pc[(i + 1) % m]
        ia, ib = inside[i], inside[(i + 1) % m]
        if ia:
            out.append(a)
        if ia != ib:
            t = (Z_NEAR - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if len(out) >= 3 else None
