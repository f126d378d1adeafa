"""nuScenes table records of one synthetic scene, and a streaming JSON writer for the 13 tables."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .catalog import (ATTR_INDEX, ATTRIBUTE_TOKENS, CAT_NAMES, CATEGORY_TOKENS, CYCLE_CATS, PED_ATTR_CATS,
                      VEHICLE_ATTR_CATS)
from .quat import yaw_quat
from .render import SceneRenderer
from .scenes import LogPlan
from .sensors import CAMERAS, IMAGE_H, IMAGE_W, LIDAR, Calib, make_timing
from .visibility import lidar_points, radar_points, visibility_token, visible_fraction
from .world import build_world, collision_filter, ego_states, states_at

TABLES = ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose", "log",
          "scene", "sample", "sample_data", "sample_annotation", "map")
PRESENT_RANGE = 75.0
_LABELS = {"vehicle.bus.rigid": "buses", "vehicle.bus.bendy": "bendy buses", "vehicle.emergency.police": "police cars",
           "vehicle.emergency.ambulance": "ambulance", "vehicle.construction": "construction vehicles",
           "human.pedestrian.adult": "peds", "human.pedestrian.child": "children", "vehicle.car": "cars",
           "human.pedestrian.personal_mobility": "scooters", "vehicle.truck": "trucks", "animal": "animal",
           "movable_object.trafficcone": "cones", "movable_object.barrier": "barriers", "vehicle.bus": "buses",
           "static_object.bicycle_rack": "bicycle rack", "human.pedestrian.police_officer": "police officer"}


class TableWriter:
    """Writes each table as a JSON list, one record per line, appending scene by scene (low memory)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.files = {t: open(root / f"{t}.json", "w", encoding="utf-8") for t in TABLES}
        self.count = Counter()
        for f in self.files.values():
            f.write("[\n")

    def write(self, table: str, records: list[dict]) -> None:
        if not records:
            return
        body = json.dumps(records, ensure_ascii=True)[1:-1].replace("}, {", "},\n{")
        f = self.files[table]
        if self.count[table]:
            f.write(",\n")
        f.write(body)
        self.count[table] += len(records)

    def close(self) -> None:
        for f in self.files.values():
            f.write("\n]\n")
            f.close()


def _tokens(rng: np.random.Generator, n: int) -> list[str]:
    h = rng.bytes(16 * n).hex()
    return [h[32 * i:32 * i + 32] for i in range(n)]


def _pose_quats(yaw: np.ndarray) -> list[list[float]]:
    return yaw_quat(yaw).tolist()


def build_scene(seed: int, index: int, name: str, log: LogPlan, log_token: str, rig: dict[str, Calib],
                sensor_tokens: dict[str, str], start_us: int, out_root: Path | None) -> tuple[dict[str, list], int]:
    """All records of one scene (and its keyframe JPEGs under out_root when given). Returns (records per table,
    scene end timestamp in microseconds)."""
    rng = np.random.default_rng([seed, 11, index])
    trng = np.random.default_rng([seed, 13, index])
    n_samples = int(39 + rng.integers(0, 3))
    timing = make_timing(rng, n_samples)
    world = build_world(rng, log.location)
    kf = timing.keyframes
    T = kf.size
    ex, ey, eyaw = ego_states(world, kf)
    lt = rig[LIDAR].translation
    sx = ex + np.cos(eyaw) * lt[0] - np.sin(eyaw) * lt[1]
    sy = ey + np.sin(eyaw) * lt[0] + np.cos(eyaw) * lt[1]
    sensor_xy = np.stack([sx, sy], 1)

    a = world.agents
    n_all = a["cat"].size
    st_all = states_at(world, kf)
    dist_all = np.hypot(st_all["x"] - sx[None], st_all["y"] - sy[None]) if n_all else np.zeros((0, T))
    cand = np.nonzero(dist_all.min(axis=1) < PRESENT_RANGE)[0] if n_all else np.zeros(0, int)
    cand = cand[np.argsort(a["prio"][cand], kind="stable")]
    st_c = {k: v[cand] for k, v in st_all.items()}
    sel = collision_filter(world, cand, st_c, np.stack([ex, ey]), eyaw)
    kept = cand[sel]
    st = {k: v[sel] for k, v in st_c.items()}
    wlh = a["wlh"][kept]
    dist = dist_all[kept]
    present = dist < PRESENT_RANGE
    vis = visible_fraction(st["x"], st["y"], st["yaw"], wlh, present, sensor_xy) if kept.size else np.zeros((0, T))
    radius = a["radius"][kept][:, None]
    u = rng.random(vis.shape)
    ann = (dist <= radius) & ((vis > 0.03) | (u < 0.25)) & ~((vis < 0.3) & (u > 0.7)) & (u > 0.008)
    n_lidar = lidar_points(rng, dist, wlh[:, None, :], vis) if kept.size else np.zeros((0, T), int)
    cats = [CAT_NAMES[c] for c in a["cat"][kept]]
    is_veh = np.array([c in VEHICLE_ATTR_CATS or c in CYCLE_CATS for c in cats], dtype=bool)
    moving = st["speed"] > 0.3
    n_radar = radar_points(rng, dist, is_veh[:, None], moving) if kept.size else np.zeros((0, T), int)
    vis_tok = visibility_token(vis)

    # ---- tokens
    scene_token = _tokens(trng, 1)[0]
    sample_tok = _tokens(trng, T)
    cal_tok = dict(zip(CAMERAS + (LIDAR,), _tokens(trng, len(CAMERAS) + 1)))
    t_us = lambda t: (start_us + np.round(np.asarray(t) * 1e6).astype(np.int64)).tolist()  # noqa: E731
    kf_us = t_us(kf)
    rec: dict[str, list] = {k: [] for k in TABLES}
    rec["sample"] = [{"token": sample_tok[k], "timestamp": kf_us[k], "prev": sample_tok[k - 1] if k else "",
                      "next": sample_tok[k + 1] if k + 1 < T else "", "scene_token": scene_token} for k in range(T)]
    for ch in CAMERAS + (LIDAR,):
        c = rig[ch]
        rec["calibrated_sensor"].append({
            "token": cal_tok[ch], "sensor_token": sensor_tokens[ch], "translation": np.round(c.translation, 6).tolist(),
            "rotation": c.quat.tolist(), "camera_intrinsic": c.intrinsic.tolist() if c.intrinsic is not None else []})

    def add_chain(ch: str, times: np.ndarray, key: np.ndarray, samp: np.ndarray, fmt: str, ext: str) -> tuple:
        n = times.size
        toks = _tokens(trng, n)
        us = t_us(times)
        px, py, pyaw = ego_states(world, times)
        q = _pose_quats(pyaw)
        pxl, pyl = px.tolist(), py.tolist()
        w, h = (IMAGE_W, IMAGE_H) if fmt == "jpg" else (0, 0)
        keyl = key.tolist()
        sampl = samp.tolist()
        for i in range(n):
            folder = "samples" if keyl[i] else "sweeps"
            rec["sample_data"].append({
                "token": toks[i], "sample_token": sample_tok[sampl[i]], "ego_pose_token": toks[i],
                "calibrated_sensor_token": cal_tok[ch], "timestamp": us[i], "fileformat": fmt,
                "is_key_frame": keyl[i], "height": h, "width": w,
                "filename": f"{folder}/{ch}/{log.logfile}__{ch}__{us[i]}.{ext}",
                "prev": toks[i - 1] if i else "", "next": toks[i + 1] if i + 1 < n else ""})
            rec["ego_pose"].append({"token": toks[i], "timestamp": us[i], "rotation": q[i],
                                    "translation": [pxl[i], pyl[i], 0.0]})
        return toks, us, px, py, pyaw

    add_chain(LIDAR, kf, np.ones(T, bool), np.arange(T), "pcd", "pcd.bin")
    cam_frames = {}
    for ch in CAMERAS:
        toks, us, px, py, pyaw = add_chain(ch, timing.cam_times[ch], timing.cam_key[ch], timing.cam_sample[ch],
                                           "jpg", "jpg")
        kidx = np.nonzero(timing.cam_key[ch])[0]
        cam_frames[ch] = [(us[i], px[i], py[i], pyaw[i]) for i in kidx]

    # ---- instances and annotations
    inst_rows = np.nonzero(ann.any(axis=1))[0]
    inst_tok = _tokens(trng, inst_rows.size)
    n_ann = int(ann[inst_rows].sum())
    ann_tok = _tokens(trng, n_ann)
    rq = yaw_quat(st["yaw"]).tolist()
    xs, ys = np.round(st["x"], 3).tolist(), np.round(st["y"], 3).tolist()
    wlh_l = wlh.tolist()
    parked = a["parked"][kept]
    pos = 0
    cat_count: Counter = Counter()
    for j, r in enumerate(inst_rows):
        ks = np.nonzero(ann[r])[0].tolist()
        toks = ann_tok[pos:pos + len(ks)]
        pos += len(ks)
        cat = cats[r]
        cat_count[cat] += 1
        rec["instance"].append({"token": inst_tok[j], "category_token": CATEGORY_TOKENS[a["cat"][kept[r]]],
                                "nbr_annotations": len(ks), "first_annotation_token": toks[0],
                                "last_annotation_token": toks[-1]})
        hz = round(wlh_l[r][2] / 2, 3)
        for m, k in enumerate(ks):
            if cat in VEHICLE_ATTR_CATS:
                attr = "vehicle.parked" if parked[r] else ("vehicle.moving" if moving[r, k] else "vehicle.stopped")
            elif cat in CYCLE_CATS:
                attr = "cycle.without_rider" if parked[r] else "cycle.with_rider"
            elif cat in PED_ATTR_CATS:
                attr = "pedestrian.moving" if moving[r, k] else "pedestrian.standing"
            else:
                attr = None
            rec["sample_annotation"].append({
                "token": toks[m], "sample_token": sample_tok[k], "instance_token": inst_tok[j],
                "visibility_token": str(int(vis_tok[r, k])),
                "attribute_tokens": [ATTRIBUTE_TOKENS[ATTR_INDEX[attr]]] if attr else [],
                "translation": [xs[r][k], ys[r][k], hz], "size": wlh_l[r], "rotation": rq[r][k],
                "prev": toks[m - 1] if m else "", "next": toks[m + 1] if m + 1 < len(ks) else "",
                "num_lidar_pts": int(n_lidar[r, k]), "num_radar_pts": int(n_radar[r, k])})

    # ---- scene record
    top = [_LABELS.get(c, c.split(".")[-1].replace("_", " ") + "s") for c, _ in cat_count.most_common(4)]
    desc = f"Synthetic {log.location}: " + ", ".join(world.features + top)
    rec["scene"].append({"token": scene_token, "log_token": log_token, "nbr_samples": T,
                         "first_sample_token": sample_tok[0], "last_sample_token": sample_tok[-1], "name": name,
                         "description": desc})

    # ---- images
    if out_root is not None:
        renderer = SceneRenderer(world, (float(world.ego_s.min()), float(world.ego_s.max())))
        for ch in CAMERAS:
            folder = out_root / "samples" / ch
            folder.mkdir(parents=True, exist_ok=True)
            for k, (us, px, py, pyaw) in enumerate(cam_frames[ch]):
                near = np.nonzero(dist[:, k] < 90.0)[0]
                boxes = [(np.array([st["x"][r, k], st["y"][r, k], wlh[r, 2] / 2]), wlh[r], float(st["yaw"][r, k]),
                          int(a["cat"][kept[r]])) for r in near]
                renderer.render(folder / f"{log.logfile}__{ch}__{us}.jpg", rig[ch], (px, py), float(pyaw), boxes)
    end_us = int(kf_us[-1])
    return rec, end_us
