"""The synthetic world of one scene: a road network around the ego path and the agents moving on it.

Every agent moves along a route (the main road's centreline, the cross road's centreline, or a custom polyline
for turning vehicles) with a progress s(t) and a lateral offset lat(t) sampled on `ego.T_GRID`; the box yaw
follows the direction of motion (and the route direction when standing still).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .catalog import CAT_INDEX, SIZES
from .ego import T_GRID, ego_progress, integrate, interp_rows, speed_profiles
from .quat import wrap_angle

LANE = 3.5
ROAD_HALF = 9.6  # main road asphalt half-width (2 lanes + bike lane + parking strip per side)
CROSS_HALF = 7.0
SIDEWALK = (9.8, 13.0)
MAIN_S = (-400.0, 900.0)
ROUTE_GAP = 1.0e4


@dataclass
class Routes:
    """Concatenated polylines; a point on route r at progress s is found with one vectorised interpolation."""
    x: np.ndarray
    y: np.ndarray
    h: np.ndarray
    cum: np.ndarray
    start: np.ndarray
    off: np.ndarray
    length: np.ndarray

    def eval(self, rid: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position (x, y) and heading of routes `rid` at progress `s` (broadcast together)."""
        rid = np.asarray(rid)
        sg = self.off[rid] + np.clip(s - self.start[rid], 0.0, self.length[rid])
        return np.interp(sg, self.cum, self.x), np.interp(sg, self.cum, self.y), np.interp(sg, self.cum, self.h)


class RouteBuilder:
    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.starts: list[float] = []

    def add(self, pts: np.ndarray, s_start: float = 0.0) -> int:
        d = np.hypot(*np.diff(pts, axis=0).T)
        keep = np.concatenate([[True], d > 1e-6])
        pts = pts[keep]
        d = np.hypot(*np.diff(pts, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(d)])
        seg_h = np.arctan2(np.diff(pts[:, 1]), np.diff(pts[:, 0]))
        h = np.unwrap(np.concatenate([seg_h[:1], (seg_h[:-1] + wrap_angle(seg_h[1:] - seg_h[:-1]) / 2), seg_h[-1:]]))
        self.parts.append((pts[:, 0], pts[:, 1], h, cum))
        self.starts.append(s_start)
        return len(self.parts) - 1

    def build(self) -> Routes:
        xs, ys, hs, cs, offs, lens = [], [], [], [], [], []
        off = 0.0
        for x, y, h, cum in self.parts:
            xs.append(x), ys.append(y), hs.append(h), cs.append(cum + off)
            offs.append(off), lens.append(cum[-1])
            off += cum[-1] + ROUTE_GAP
        return Routes(np.concatenate(xs), np.concatenate(ys), np.concatenate(hs), np.concatenate(cs),
                      np.array(self.starts), np.array(offs), np.array(lens))


@dataclass
class Agents:
    cat: list[int] = field(default_factory=list)
    wlh: list[np.ndarray] = field(default_factory=list)
    route: list[int] = field(default_factory=list)
    s: list[np.ndarray] = field(default_factory=list)
    lat: list[np.ndarray] = field(default_factory=list)
    rest_yaw: list[float] = field(default_factory=list)  # yaw offset to the route heading when not moving
    parked: list[bool] = field(default_factory=list)
    static: list[bool] = field(default_factory=list)
    prio: list[int] = field(default_factory=list)
    radius: list[float] = field(default_factory=list)

    def add(self, rng: np.random.Generator, cat: str, route: int, s, lat, rest_yaw: float = 0.0,
            parked: bool = False, static: bool = False, prio: int = 5, wlh: np.ndarray | None = None) -> np.ndarray:
        if wlh is None:
            wlh = sample_size(rng, cat)
        self.cat.append(CAT_INDEX[cat])
        self.wlh.append(wlh)
        self.route.append(route)
        self.s.append(np.broadcast_to(np.asarray(s, dtype=float), T_GRID.shape))
        self.lat.append(np.broadcast_to(np.asarray(lat, dtype=float), T_GRID.shape))
        self.rest_yaw.append(rest_yaw)
        self.parked.append(parked)
        self.static.append(static)
        self.prio.append(prio)
        self.radius.append(float(rng.uniform(47.0, 56.0)))
        return wlh


def sample_size(rng: np.random.Generator, cat: str) -> np.ndarray:
    mean, std = SIZES[cat]
    return np.round(np.array(mean) + np.array(std) * np.clip(rng.standard_normal(3), -2.0, 2.0), 3)


def _choice(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    p = np.array([table[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


TRAFFIC_MIX = {"vehicle.car": 0.79, "vehicle.truck": 0.07, "vehicle.bus.rigid": 0.035, "vehicle.bus.bendy": 0.006,
               "vehicle.motorcycle": 0.06, "vehicle.emergency.police": 0.01, "vehicle.emergency.ambulance": 0.004,
               "vehicle.construction": 0.008}
PARKED_MIX = {"vehicle.car": 0.8, "vehicle.truck": 0.07, "vehicle.motorcycle": 0.05, "vehicle.bicycle": 0.03,
              "vehicle.trailer": 0.02, "vehicle.construction": 0.01, "vehicle.emergency.police": 0.01,
              "vehicle.bus.rigid": 0.01}
PED_MIX = {"human.pedestrian.adult": 0.84, "human.pedestrian.child": 0.05,
           "human.pedestrian.construction_worker": 0.025, "human.pedestrian.police_officer": 0.01,
           "human.pedestrian.stroller": 0.02, "human.pedestrian.wheelchair": 0.01,
           "human.pedestrian.personal_mobility": 0.03, "animal": 0.005,
           "movable_object.pushable_pullable": 0.01}


@dataclass
class World:
    routes: Routes
    side: float  # +1: traffic keeps left (Singapore), -1: keeps right (Boston)
    junction_s: float | None
    cross_route: int | None
    ego_s: np.ndarray  # (T_GRID,)
    ego_lat: float
    agents: dict  # stacked arrays (agents 1..n; the ego is not an agent)
    features: list[str]


def _main_road(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """Centreline points (every metre over MAIN_S; s = 0 at the ego start) and the turns (s0, angle, radius)."""
    s = np.arange(MAIN_S[0], MAIN_S[1] + 0.5, 1.0)
    h = np.full_like(s, rng.uniform(-np.pi, np.pi))
    turns = []
    if rng.random() < 0.55:
        ang = np.deg2rad(rng.uniform(25.0, 90.0)) * rng.choice([-1.0, 1.0])
        rad = rng.uniform(25.0, 60.0)
        s0 = rng.uniform(5.0, 150.0)
        h = h + ang * np.clip((s - s0) / (abs(ang) * rad), 0.0, 1.0)
        turns.append((s0, ang, rad))
    if rng.random() < 0.3:  # a gentle bend somewhere else
        ang = np.deg2rad(rng.uniform(5.0, 18.0)) * rng.choice([-1.0, 1.0])
        rad = rng.uniform(120.0, 300.0)
        s0 = rng.choice([rng.uniform(-250.0, -60.0), rng.uniform(320.0, 600.0)])
        h = h + ang * np.clip((s - s0) / (abs(ang) * rad), 0.0, 1.0)
        turns.append((s0, ang, rad))
    hm = (h[1:] + h[:-1]) / 2
    xy = np.zeros((s.size, 2))
    xy[1:, 0] = np.cumsum(np.cos(hm))
    xy[1:, 1] = np.cumsum(np.sin(hm))
    i0 = int(np.argmin(np.abs(s)))
    xy -= xy[i0]
    xy += rng.uniform(300.0, 2200.0, 2)
    return xy, turns


def _lane_pts(routes: Routes, rid: int, s: np.ndarray, lat: float) -> np.ndarray:
    x, y, h = routes.eval(np.full(s.shape, rid), s)
    return np.stack([x - lat * np.sin(h), y + lat * np.cos(h)], axis=1)


def build_world(rng: np.random.Generator, location: str) -> World:
    """Road network, ego motion and agents of one scene (before range / collision filtering)."""
    side = 1.0 if location.startswith("singapore") else -1.0
    feats: list[str] = []
    rb = RouteBuilder()
    main_xy, turns = _main_road(rng)
    rb.add(main_xy, MAIN_S[0])
    routes = rb.build()
    ego_s, ego_info = ego_progress(rng)
    kf_t = np.linspace(0.0, 20.0, 41)
    ego_kf = interp_rows(ego_s[None], kf_t)[0]
    s_lo, s_hi = float(ego_kf.min()), float(ego_kf.max())
    for s0, ang, rad in turns:
        if s0 < s_hi + 30 and s0 + abs(ang) * rad > s_lo - 30 and abs(ang) > np.deg2rad(20):
            feats.append("turn left" if ang > 0 else "turn right")
    # junction on a straight stretch near the ego path
    junction_s = None
    cross_rid = None
    if rng.random() < 0.6:
        for _ in range(10):
            cand = rng.uniform(s_lo - 30.0, s_hi + 40.0)
            if all(not (t0 - 45 < cand < t0 + abs(a) * r + 45) for t0, a, r in turns):
                junction_s = float(cand)
                break
    turner_rids: list[tuple[int, float]] = []
    if junction_s is not None:
        jx, jy, jh = routes.eval(np.array(0), np.array(junction_s))
        ch = float(jh) + np.pi / 2
        cs = np.arange(-300.0, 300.5, 1.0)
        cross_xy = np.stack([jx + cs * np.cos(ch), jy + cs * np.sin(ch)], axis=1)
        cross_rid = rb.add(cross_xy, -300.0)
        routes = rb.build()
        feats.append("intersection")
        for _ in range(int(rng.integers(0, 3))):  # vehicles turning from the cross road onto the main road
            from_dir = rng.choice([-1.0, 1.0])  # travel direction along the cross road
            to_dir = rng.choice([-1.0, 1.0])  # travel direction along the main road
            lat_in = side * 1.75 * from_dir
            lat_out = side * 5.25 * to_dir
            s_in = np.arange(-150.0, -ROAD_HALF - 2.0, 1.0) * from_dir
            a_pts = _lane_pts(routes, cross_rid, s_in, lat_in)
            s_out = junction_s + to_dir * np.arange(CROSS_HALF + 3.0, 250.0, 1.0)
            b_pts = _lane_pts(routes, 0, s_out, lat_out)
            a, b = a_pts[-1], b_pts[0]
            d_in = a_pts[-1] - a_pts[-2]
            d_out = b_pts[1] - b_pts[0]
            mat = np.stack([d_in / np.linalg.norm(d_in), -d_out / np.linalg.norm(d_out)], axis=1)
            if abs(np.linalg.det(mat)) < 1e-3:
                continue
            k = np.linalg.solve(mat, b - a)
            if k[0] <= 0 or k[1] <= 0:
                continue
            ctrl = a + k[0] * mat[:, 0]
            u = np.linspace(0.0, 1.0, 24)[1:-1, None]
            bez = (1 - u) ** 2 * a + 2 * (1 - u) * u * ctrl + u ** 2 * b
            rid = rb.add(np.concatenate([a_pts, bez, b_pts]), 0.0)
            turner_rids.append((rid, float(np.sum(np.hypot(*np.diff(a_pts, axis=0).T)))))
        routes = rb.build()

    ag = Agents()
    ego_lat = side * LANE / 2
    # --- ego lane: a leader and a follower that copy the ego's speed profile shifted in time
    if rng.random() < 0.7:
        tau, gap = rng.uniform(0.5, 3.5), rng.uniform(9.0, 28.0)
        cat = _choice(rng, {"vehicle.car": 0.85, "vehicle.truck": 0.08, "vehicle.bus.rigid": 0.05,
                            "vehicle.motorcycle": 0.02})
        ag.add(rng, cat, 0, interp_rows(ego_s[None], T_GRID + tau)[0] + gap, ego_lat, prio=2)
    if rng.random() < 0.6:
        tau, gap = rng.uniform(0.5, 3.0), rng.uniform(9.0, 25.0)
        ag.add(rng, _choice(rng, TRAFFIC_MIX), 0, interp_rows(ego_s[None], T_GRID - tau)[0] - gap, ego_lat, prio=2)
    traffic_gap = rng.uniform(5.0, 35.0)
    # --- platoons on the other main-road lanes (same speed profile per lane: no collisions within a lane)
    lanes = [(side * 1.5 * LANE, 1.0), (-side * 0.5 * LANE, -1.0), (-side * 1.5 * LANE, -1.0)]
    kf_idx = np.searchsorted(T_GRID, kf_t - 1e-9)
    for lat, d in lanes:
        if rng.random() < 0.12:
            continue
        v = speed_profiles(rng, np.array([rng.uniform(4.0, 13.0)]), stop_prob=0.4, rel_var=0.15)
        p = integrate(np.clip(v, 0, None))[0]
        delta = ego_s[kf_idx] - d * p[kf_idx]
        lo, hi = delta.min() - 68.0, delta.max() + 68.0
        pos = lo + rng.uniform(0.0, traffic_gap)
        while pos < hi:
            cat = _choice(rng, TRAFFIC_MIX)
            wlh = ag.add(rng, cat, 0, pos + d * p, lat, prio=3)
            rear = pos - d * wlh[1] / 2
            if cat == "vehicle.truck" and rng.random() < 0.3:
                tw = sample_size(rng, "vehicle.trailer")
                ag.add(rng, "vehicle.trailer", 0, rear - d * (0.4 + tw[1] / 2) + d * p, lat, prio=3, wlh=tw)
                rear -= d * (0.4 + tw[1])
            pos = pos + abs(rear - pos) + 3.0 + rng.exponential(traffic_gap) + 2.4
    # --- cyclists near the kerb, each with its own profile
    n_bikes = int(rng.poisson(1.5))
    if n_bikes:
        v = speed_profiles(rng, rng.uniform(2.5, 6.0, n_bikes), stop_prob=0.15, rel_var=0.15)
        p = integrate(np.clip(v, 0, None))
        for i in range(n_bikes):
            d = rng.choice([1.0, -1.0])
            delta = ego_s[kf_idx] - d * p[i, kf_idx]
            s0 = rng.uniform(delta.min() - 50, delta.max() + 50)
            ag.add(rng, "vehicle.bicycle", 0, s0 + d * p[i], side * 7.0 * d, prio=4)
    # --- parked vehicles along both kerbs
    occ = rng.uniform(0.0, 0.95)
    if occ > 0.1:
        feats.append("parked cars")
    for d in (1.0, -1.0):
        lat = side * 8.5 * d
        pos = s_lo - 70.0 + rng.uniform(0, 6)
        while pos < s_hi + 70.0:
            cat = _choice(rng, PARKED_MIX)
            wlh = sample_size(rng, cat)
            slot = max(6.0, wlh[1] + 1.2)
            near_junction = junction_s is not None and abs(pos - junction_s) < CROSS_HALF + 6.0
            if rng.random() < occ and not near_junction:
                yaw = 0.0 if d > 0 else np.pi
                if cat in ("vehicle.bicycle", "vehicle.motorcycle") and rng.random() < 0.5:
                    yaw += np.pi / 2 * rng.choice([-1, 1])
                ag.add(rng, cat, 0, pos + slot / 2, lat - d * side * rng.uniform(0, 0.3), rest_yaw=yaw,
                       parked=True, static=True, prio=1, wlh=wlh)
            pos += slot
    # --- construction zone closing the outer lane
    if rng.random() < 0.22:
        feats.append("construction zone")
        a = rng.uniform(s_lo - 20, s_hi + 20)
        length = rng.uniform(20, 45)
        lat_c = side * 1.5 * LANE
        for k in np.arange(0.0, length, rng.uniform(3.0, 5.0)):
            ag.add(rng, "movable_object.trafficcone", 0, a + k, side * (LANE + 0.3), rest_yaw=rng.uniform(-3, 3),
                   static=True, prio=1)
        for s_b in (a - 2.0, a + length + 2.0):
            ag.add(rng, "movable_object.barrier", 0, s_b, lat_c, static=True, prio=1)
        if rng.random() < 0.6:
            ag.add(rng, "vehicle.construction", 0, a + length / 2, lat_c, parked=True, static=True, prio=1)
        for _ in range(int(rng.integers(1, 4))):
            sw = a + rng.uniform(2, length - 2)
            wig = 0.6 * np.sin(2 * np.pi * T_GRID / rng.uniform(8, 16) + rng.uniform(0, 6))
            ag.add(rng, "human.pedestrian.construction_worker", 0, sw + 0.8 * np.sin(T_GRID / 3 + rng.uniform(0, 6)),
                   lat_c + side * 0.3 * wig, rest_yaw=rng.uniform(-3, 3), prio=1)
    # --- pedestrians on the main road's sidewalks
    ped_density = rng.uniform(0.03, 0.34)
    if ped_density > 0.12:
        feats.append("many peds")
    span = (s_hi - s_lo) + 140.0
    n_peds = int(rng.poisson(ped_density * span * 2))
    if n_peds:
        moving = rng.random(n_peds) < 0.72
        speed = np.where(moving, rng.uniform(0.8, 1.7, n_peds), 0.0)
        flip = np.where(rng.random(n_peds) < 0.15, rng.uniform(2.0, 18.0, n_peds), np.nan)
        v = speed_profiles(rng, speed, stop_prob=0.2, rel_var=0.12, accel=1.0, decel=1.5, knot_dt=3.0,
                           stop_len=(1.5, 5.0), flip_time=flip)
        p = integrate(v)
        for i in range(n_peds):
            d = rng.choice([1.0, -1.0])
            dirn = rng.choice([1.0, -1.0])
            lat0 = d * rng.uniform(SIDEWALK[0] + 0.5, SIDEWALK[1] - 1.2)
            wig = rng.uniform(0.05, 0.35) * np.sin(2 * np.pi * T_GRID / rng.uniform(5.0, 15.0) + rng.uniform(0, 6))
            s0 = rng.uniform(s_lo - 70.0, s_hi + 70.0)
            cat = _choice(rng, PED_MIX)
            rest = rng.uniform(-np.pi, np.pi) if not moving[i] else (0.0 if dirn > 0 else np.pi)
            ag.add(rng, cat, 0, s0 + dirn * p[i], lat0 + wig, rest_yaw=rest, static=False, prio=7)
    # --- bicycle racks and debris on sidewalks
    if rng.random() < 0.25:
        d = rng.choice([1.0, -1.0])
        ag.add(rng, "static_object.bicycle_rack", 0, rng.uniform(s_lo - 30, s_hi + 30), d * 12.3,
               static=True, prio=1)
        feats.append("bicycle rack")
    if rng.random() < 0.1:
        ag.add(rng, "movable_object.debris", 0, rng.uniform(s_lo - 30, s_hi + 30), rng.choice([1, -1]) * 11.5,
               rest_yaw=rng.uniform(-3, 3), static=True, prio=1)
    # --- cross road traffic, turning vehicles and crossing pedestrians
    if cross_rid is not None:
        n_cross = int(rng.integers(0, 6))
        if n_cross:
            v = speed_profiles(rng, rng.uniform(4.0, 11.0, n_cross), stop_prob=0.5, rel_var=0.15)
            p = integrate(np.clip(v, 0, None))
            for i in range(n_cross):
                d = rng.choice([1.0, -1.0])
                t_at = rng.uniform(-2.0, 20.0)
                s0 = -d * p[i, np.searchsorted(T_GRID, t_at)] + rng.uniform(-40, 40)
                ag.add(rng, _choice(rng, TRAFFIC_MIX), cross_rid, s0 + d * p[i],
                       side * (1.75 if rng.random() < 0.6 else 5.25) * d, prio=5)
        if turner_rids:
            feats.append("turning vehicles")
            v = speed_profiles(rng, rng.uniform(5.0, 9.0, len(turner_rids)), rel_var=0.1)
            p = integrate(np.clip(v, 0, None))
            for i, (rid, u_j) in enumerate(turner_rids):
                t_j = rng.uniform(1.0, 18.0)
                s0 = u_j - p[i, np.searchsorted(T_GRID, t_j)]
                ag.add(rng, _choice(rng, {"vehicle.car": 0.85, "vehicle.truck": 0.1, "vehicle.motorcycle": 0.05}),
                       rid, s0 + p[i], 0.0, prio=6)
        n_cross_peds = int(rng.integers(0, 5))
        if n_cross_peds:
            feats.append("peds crossing")
        for _ in range(n_cross_peds):
            s_c = rng.choice([-1.0, 1.0]) * rng.uniform(ROAD_HALF + 1.0, ROAD_HALF + 3.5)
            dirn = rng.choice([-1.0, 1.0])
            t0 = rng.uniform(-4.0, 16.0)
            sp = rng.uniform(1.0, 1.6)
            lat = np.clip(-dirn * (CROSS_HALF + 1.5) + dirn * sp * (T_GRID - t0), -(CROSS_HALF + 1.5),
                          CROSS_HALF + 1.5)
            ag.add(rng, _choice(rng, {"human.pedestrian.adult": 0.9, "human.pedestrian.child": 0.1}), cross_rid,
                   s_c + 0.3 * np.sin(T_GRID / 4 + rng.uniform(0, 6)), lat, rest_yaw=dirn * np.pi / 2, prio=7)
    if ego_info["stops"]:
        feats.append("ego stops")
    n = len(ag.cat)
    agents = {
        "cat": np.array(ag.cat, dtype=int), "wlh": np.array(ag.wlh).reshape(n, 3),
        "route": np.array(ag.route, dtype=int), "s": np.array(ag.s).reshape(n, T_GRID.size),
        "lat": np.array(ag.lat).reshape(n, T_GRID.size), "rest_yaw": np.array(ag.rest_yaw, dtype=float),
        "parked": np.array(ag.parked, dtype=bool), "static": np.array(ag.static, dtype=bool),
        "prio": np.array(ag.prio, dtype=int), "radius": np.array(ag.radius, dtype=float),
    }
    return World(routes, side, junction_s, cross_rid, ego_s, ego_lat, agents, feats)


def states_at(world: World, t: np.ndarray, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Agent boxes at scene times t (m,): x, y, yaw, speed arrays (n, m). Yaw follows the motion; when an agent
    does not move it keeps its last moving heading (or its rest heading)."""
    a = world.agents
    if idx is None:
        idx = np.arange(a["cat"].size)
    rid = a["route"][idx][:, None]
    out = {}
    pos = []
    for dt in (0.0, -0.1, 0.1):
        s = interp_rows(a["s"][idx], t + dt)
        lat = interp_rows(a["lat"][idx], t + dt)
        x, y, h = world.routes.eval(rid, s)
        pos.append((x - lat * np.sin(h), y + lat * np.cos(h), h))
    x, y, h = pos[0]
    vx = (pos[2][0] - pos[1][0]) / 0.2
    vy = (pos[2][1] - pos[1][1]) / 0.2
    speed = np.hypot(vx, vy)
    rest = h + a["rest_yaw"][idx][:, None]
    moving = (speed > 0.3) & ~a["static"][idx][:, None]
    myaw = np.arctan2(vy, vx)
    # forward-fill the last moving heading, back-fill before the first move
    m = t.size
    cols = np.where(moving, np.arange(m)[None, :], -1)
    last = np.maximum.accumulate(cols, axis=1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(moving, np.arange(m)[None, :], m), axis=1), axis=1), axis=1)
    src = np.where(last >= 0, last, nxt)
    has = src < m
    srcc = np.clip(src, 0, m - 1)
    yaw = np.where(has, np.take_along_axis(myaw, srcc, axis=1), rest)
    out["x"], out["y"], out["yaw"], out["speed"] = x, y, wrap_angle(yaw), speed
    return out


def ego_states(world: World, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ego pose (x, y, yaw) at scene times t: position in its lane, heading along the lane."""
    s = interp_rows(world.ego_s[None], t)[0]
    x, y, h = world.routes.eval(np.zeros(t.shape, dtype=int), s)
    lat = world.ego_lat
    return x - lat * np.sin(h), y + lat * np.cos(h), wrap_angle(h)


def footprint_circles(wlh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circle centres (offsets along the box's long axis, and axis flag) covering a w x l footprint."""
    w, l = float(wlh[0]), float(wlh[1])
    major, minor = max(w, l), min(w, l)
    k = max(1, int(np.ceil(major / max(minor, 0.3))))
    offs = np.linspace(-(major - minor) / 2, (major - minor) / 2, k) if k > 1 else np.zeros(1)
    return offs, np.full(k, 0.5 * minor * 1.05 + 0.1)


def collision_filter(world: World, cand: np.ndarray, st: dict, ego_xy: np.ndarray, ego_yaw: np.ndarray) -> np.ndarray:
    """Greedy removal of agents whose footprints overlap the ego or an already kept agent at any keyframe.
    `cand` are agent indices (in priority order), `st` their states at the keyframes. Returns positions in cand."""
    a = world.agents
    kept_c: list[np.ndarray] = []
    kept_r: list[np.ndarray] = []
    # the ego: 2 circles of radius 1.1 m along its length
    for o in (-0.6, 1.0, 2.6):
        kept_c.append(np.stack([ego_xy[0] + o * np.cos(ego_yaw), ego_xy[1] + o * np.sin(ego_yaw)], -1)[None])
        kept_r.append(np.array([1.15]))
    keep = []
    for j, i in enumerate(cand):
        wlh = a["wlh"][i]
        offs, rad = footprint_circles(wlh)
        yaw = st["yaw"][j] + (0.0 if wlh[1] >= wlh[0] else np.pi / 2)
        cx = st["x"][j][None] + offs[:, None] * np.cos(yaw)[None]
        cy = st["y"][j][None] + offs[:, None] * np.sin(yaw)[None]
        c = np.stack([cx, cy], -1)  # (k, T, 2)
        kc = np.concatenate(kept_c, 0)
        kr = np.concatenate(kept_r, 0)
        d = np.hypot(c[:, None, :, 0] - kc[None, :, :, 0], c[:, None, :, 1] - kc[None, :, :, 1])
        if np.any(d < (rad[:, None, None] + kr[None, :, None])):
            continue
        keep.append(j)
        kept_c.append(c)
        kept_r.append(rad)
    return np.array(keep, dtype=int)
