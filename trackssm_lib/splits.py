"""Scene splits: the official nuScenes lists, plus a test split with ground truth carved from official val.

v1.0-mini: ``mini_train`` (8 scenes) and ``mini_val`` (2 scenes), as the devkit defines them.
v1.0-trainval: ``train`` is the official train list (700 scenes). The official test set has no annotations, so
the official val list (150 scenes) is divided BY LOG into ``val`` and ``test``: logs sorted by log file name are
given in turn to whichever side has fewer scenes so far (ties go to ``val``). A log never spans both sides, so no
drive (same place, time, weather and often the same objects) is seen in validation and in test: no leakage
between model selection and the reported numbers. The official val scenes remain untouched by training.
"""
from __future__ import annotations

from nuscenes.nuscenes import NuScenes
from nuscenes.utils.splits import create_splits_scenes

from trackssm_lib.nuscenes_db import DataError

SPLITS_BY_VERSION: dict[str, tuple[str, ...]] = {
    "v1.0-mini": ("mini_train", "mini_val"),
    "v1.0-trainval": ("train", "val", "test"),
}


# Split names that play the same role in the other version, so a profile or notebook written for one version
# stays usable: v1.0-mini has no test split, its validation scenes stand in for it.
SPLIT_EQUIVALENT: dict[str, dict[str, str]] = {
    "v1.0-mini": {"train": "mini_train", "val": "mini_val", "test": "mini_val"},
    "v1.0-trainval": {"mini_train": "train", "mini_val": "val"},
}


def equivalent_split(version: str, split: str) -> str:
    """This version's name for a split named in the other version's terms (unchanged when it has one)."""
    return SPLIT_EQUIVALENT.get(version, {}).get(split, split)


def available_splits(version: str) -> tuple[str, ...]:
    if version not in SPLITS_BY_VERSION:
        raise DataError(f"version {version!r} has no annotated splits; use one of {tuple(SPLITS_BY_VERSION)}")
    return SPLITS_BY_VERSION[version]


def scene_split_map(nusc: NuScenes) -> dict[str, str]:
    """Scene name -> split name for every scene of this database that belongs to a split."""
    official = create_splits_scenes(verbose=False)
    present = {s["name"]: s for s in nusc.scene}
    if nusc.version == "v1.0-mini":
        return {name: split for split in ("mini_train", "mini_val") for name in official[split] if name in present}
    available_splits(nusc.version)
    mapping = {name: "train" for name in official["train"] if name in present}
    val_scenes = [present[name] for name in official["val"] if name in present]
    mapping.update(_divide_by_log(nusc, val_scenes))
    return mapping


def _divide_by_log(nusc: NuScenes, scenes: list[dict]) -> dict[str, str]:
    by_log: dict[str, list[str]] = {}
    for scene in scenes:
        logfile = nusc.get("log", scene["log_token"])["logfile"]
        by_log.setdefault(logfile, []).append(scene["name"])
    counts = {"val": 0, "test": 0}
    out = {}
    for logfile in sorted(by_log):
        side = "val" if counts["val"] <= counts["test"] else "test"
        counts[side] += len(by_log[logfile])
        out.update({name: side for name in by_log[logfile]})
    return out


def split_scenes(nusc: NuScenes, split: str) -> list[str]:
    """Scene names of a split, in database order; ``all`` gives every scene that belongs to a split."""
    valid = available_splits(nusc.version) + ("all",)
    if split not in valid:
        raise DataError(f"unknown split {split!r} for {nusc.version}; expected one of {valid}")
    mapping = scene_split_map(nusc)
    return [s["name"] for s in nusc.scene if s["name"] in mapping and (split == "all" or mapping[s["name"]] == split)]
