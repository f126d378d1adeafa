"""Speed profiles (shared by the ego vehicle and all movers) and the ego vehicle's motion along its lane."""
from __future__ import annotations

import numpy as np

DT = 0.1
T_GRID = np.round(np.arange(-6.0, 28.0 + 1e-9, DT), 6)  # scene time grid, seconds (scene starts at 0)


def speed_profiles(rng: np.random.Generator, cruise: np.ndarray, stop_prob: float = 0.0,
                   start_rest_prob: float = 0.0, rel_var: float = 0.2, accel: float = 2.0, decel: float = 3.0,
                   knot_dt: float = 4.0, stop_len: tuple[float, float] = (2.0, 7.0),
                   flip_time: np.ndarray | None = None) -> np.ndarray:
    """Smooth speed profiles (n, len(T_GRID)) around per-agent cruise speeds (m/s), with optional stops and
    starts from rest; accelerations limited to `accel` / `decel` (m/s^2)."""
    cruise = np.asarray(cruise, dtype=float)
    n = cruise.shape[0]
    knots = np.arange(T_GRID[0], T_GRID[-1] + knot_dt, knot_dt)
    vals = cruise[:, None] * np.clip(1.0 + rel_var * rng.standard_normal((n, knots.size)), 0.3, 1.6)
    pos = (T_GRID - knots[0]) / knot_dt
    i0 = np.minimum(np.floor(pos).astype(int), knots.size - 2)
    w = pos - i0
    target = vals[:, i0] * (1 - w) + vals[:, i0 + 1] * w
    stop = rng.random(n) < stop_prob
    ts = rng.uniform(-1.0, 16.0, n)
    dur = rng.uniform(*stop_len, n)
    target[stop[:, None] & (T_GRID[None, :] > ts[:, None]) & (T_GRID[None, :] < (ts + dur)[:, None])] = 0.0
    rest = rng.random(n) < start_rest_prob
    tgo = rng.uniform(0.5, 6.0, n)
    target[rest[:, None] & (T_GRID[None, :] < tgo[:, None])] = 0.0
    if flip_time is not None:  # direction reversals (pedestrians turning round); NaN = never
        flip = np.nan_to_num(np.asarray(flip_time, dtype=float), nan=1e9)
        target = np.where(T_GRID[None, :] > flip[:, None], -target, target)
    v = np.empty_like(target)
    v[:, 0] = target[:, 0]
    up, down = accel * DT, decel * DT
    for k in range(1, T_GRID.size):
        v[:, k] = v[:, k - 1] + np.clip(target[:, k] - v[:, k - 1], -down, up)
    return v


def integrate(v: np.ndarray) -> np.ndarray:
    """Progress (n, T) from speeds (n, T), zero at scene time 0."""
    p = np.cumsum(v, axis=1) * DT
    i0 = int(np.argmin(np.abs(T_GRID)))
    return p - p[:, i0:i0 + 1]


def ego_progress(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The ego vehicle's progress along its lane (T,), with a summary of its behaviour."""
    cruise = rng.uniform(5.0, 12.0)
    stops = rng.random() < 0.45
    rest = rng.random() < 0.15
    v = speed_profiles(rng, np.array([cruise]), stop_prob=1.0 if stops else 0.0,
                       start_rest_prob=1.0 if rest else 0.0, rel_var=0.15, accel=1.8, decel=2.5,
                       stop_len=(3.0, 8.0))
    v = np.clip(v, 0.0, 12.5)
    return integrate(v)[0], {"stops": bool(stops or rest), "cruise": float(cruise)}


def interp_rows(grid_vals: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of (n, len(T_GRID)) at times t (m,) -> (n, m)."""
    pos = np.clip((np.asarray(t) - T_GRID[0]) / DT, 0.0, T_GRID.size - 1.000001)
    i0 = np.floor(pos).astype(int)
    w = pos - i0
    return grid_vals[..., i0] * (1 - w) + grid_vals[..., i0 + 1] * w
