"""Which official scene names a synthetic dataset uses, and the logs (vehicle, place, date) they come from."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

VERSIONS = ("v1.0-mini", "v1.0-trainval")
LOCATIONS = ("boston-seaport", "singapore-onenorth", "singapore-queenstown", "singapore-hollandvillage")
_LOC_P = np.array([0.55, 0.2, 0.12, 0.13])


def _official(version: str) -> tuple[list[str], list[str]]:
    from nuscenes.utils import splits

    if version == "v1.0-mini":
        return list(splits.mini_train), list(splits.mini_val)
    return list(splits.train), list(splits.val)


def select_scenes(version: str, n_scenes: int | None) -> list[str]:
    """Official scene names for `version`, sorted by scene number. For a subset, both splits (train and val)
    are represented whenever n_scenes >= 2 (deterministic, independent of the seed)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown nuScenes version {version!r}: expected one of {', '.join(VERSIONS)}")
    train, val = _official(version)
    total = len(train) + len(val)
    if n_scenes is None:
        chosen = train + val
    else:
        n = int(n_scenes)
        if n < 1:
            raise ValueError(f"n_scenes must be >= 1 (got {n_scenes})")
        if n > total:
            raise ValueError(f"n_scenes={n} is more than the {total} scenes of {version}")
        if version == "v1.0-mini":
            order = [train[0], val[0], train[1], val[1]] + train[2:]
            chosen = order[:n]
        else:
            n_val = int(round(n * len(val) / total))
            if n >= 2:
                n_val = max(1, n_val)
            n_val = min(n_val, n - 1, len(val))
            n_train = n - n_val
            chosen = [train[(i * len(train)) // n_train] for i in range(n_train)]
            chosen += [val[(i * len(val)) // n_val] for i in range(n_val)] if n_val else []
    return sorted(chosen, key=lambda s: int(s.split("-")[1]))


@dataclass(frozen=True)
class LogPlan:
    index: int
    logfile: str
    vehicle: str
    date: str
    location: str
    start_us: int  # first scene's start, microseconds since the epoch
    scenes: tuple[int, ...]  # indices into the scene list


def plan_logs(rng: np.random.Generator, n: int) -> list[LogPlan]:
    """Group consecutive scenes into logs of 1-4 scenes, each with a place, a vehicle and a 2018 date."""
    logs: list[LogPlan] = []
    i = 0
    while i < n:
        k = int(min(n - i, rng.integers(1, 5)))
        loc = LOCATIONS[int(rng.choice(len(LOCATIONS), p=_LOC_P))]
        day = dt.date(2018, 7, 10) + dt.timedelta(days=int(rng.integers(0, 130)))
        local = dt.datetime(day.year, day.month, day.day, int(rng.integers(8, 18)), int(rng.integers(0, 60)),
                            int(rng.integers(0, 60)))
        if loc.startswith("singapore"):
            vehicle, off_h = "n015", 8
        else:
            vehicle, off_h = "n008", (-4 if day < dt.date(2018, 11, 4) else -5)
        tz = dt.timezone(dt.timedelta(hours=off_h))
        start = int(local.replace(tzinfo=tz).timestamp()) * 1_000_000 + int(rng.integers(0, 1_000_000))
        sign = "+" if off_h >= 0 else "-"
        logfile = f"{vehicle}-{local:%Y-%m-%d-%H-%M-%S}{sign}{abs(off_h):02d}00"
        logs.append(LogPlan(len(logs), logfile, vehicle, f"{day:%Y-%m-%d}", loc, start, tuple(range(i, i + k))))
        i += k
    return logs
