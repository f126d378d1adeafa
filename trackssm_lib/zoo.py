"""Model zoo: named recipes (``configs/zoo/<name>.yaml``) that build a TrackSSM from nothing, and shipped weights.

``python -m trackssm_lib zoo list | train NAME [--dataroot DIR --version V] [--out DIR] [--seed S] |
evaluate NAME --data EXPORT --split S``

A recipe names everything one zoo model needs: the dataset (the synthetic trainval-sized default, or a real
dataroot), the export, the training stages (phase 0 / 1 / 2, each a phase config plus the keys that differ, each
starting from an earlier stage of the same recipe), the stage whose best checkpoint is the model, the ``track``
flags it runs with, and the scoring (per split, the baselines and bounds scored beside the model). ``zoo train`` runs it under ``OUT``
(default ``outputs/zoo/<name>``): every stage writes ``stage.json`` when it is finished and is skipped on a rerun; an
interrupted training stage continues from its ``*_last.pth`` (``train --resume``), an interrupted export from its
complete sequences, an interrupted scoring from the finished tracker runs. A stage whose settings differ from the
finished ``stage.json`` in ``OUT`` is refused (use another ``--out``). The run ends with ``OUT/zoo_record.json``:
the model's and the baselines' HOTA / MOTA / IDF1 / IDSW on every scored split, and the training minutes.

Shipped models live in ``zoo/``: ``index.json`` (a list of entries, see :data:`INDEX_KEYS`) and ``<name>.pth``
(the project checkpoint format, weights and config only, loaded strictly). ``zoo:NAME`` works wherever a checkpoint
path does (:func:`resolve_checkpoint`); the file's sha256 is checked against the index first.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from trackssm_lib.fileio import write_json_atomic
from trackssm_lib.records import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[1]
ZOO_DIR = REPO_ROOT / "zoo"
RECIPE_DIR = REPO_ROOT / "configs" / "zoo"
ZOO_PREFIX = "zoo:"

INDEX_KEYS = ("name", "weights", "sha256", "recipe", "track_args", "headline", "train_minutes", "machine", "results")

# Recipe keys: allowed values and meaning (the recipe files repeat them as comments).
RECIPE_KEYS = {
    "description": "one line: what this model is (shown by `zoo list`)",
    "differs": "one line: what differs from the official TrackSSM (the zoo table's column)",
    "seed": "int: the seed of every training stage (`zoo train --seed` overrides it)",
    "data": "mapping: synthetic (version, seed, scenes) used without --dataroot; max_scenes per split; workers",
    "stages": "list of training stages, run in order (see STAGE_KEYS)",
    "model": "name of the stage whose best checkpoint is the model",
    "track_args": "list: the `track` flags the model runs with (only --ego-compensation is known)",
    "evaluation": "mapping: splits (each with its baselines and bounds), detections, detection_seeds (EVAL_KEYS)",
}
DATA_KEYS = {"synthetic": "mapping: version (v1.0-mini | v1.0-trainval), seed (int), scenes (int | null: all)",
             "max_scenes": "mapping split -> int | null: the first N scenes of each exported split",
             "workers": "int: export worker processes"}
STAGE_KEYS = {"name": "str: the stage's folder name under OUT/stages",
              "phase": "0 (MOT17 pretraining), 1 (decoder) or 2 (everything)",
              "config": "phase config the stage inherits (configs/nuscenes_phase1.yaml | ..._phase2.yaml)",
              "start": "name of the earlier stage whose weights it starts from (phase 1 and 2)",
              "set": "mapping: the config keys that differ from the phase config"}
EVAL_KEYS = {"splits": "mapping: export split scored by `zoo train` (val, test) -> the rows scored beside the model, "
                       "from kalman, kalman-ego, bytetrack, botsort, ocsort (baselines) and oracle-past, oracle "
                       "(bounds: the truth's past / future with the same association)",
             "detections": "gt | noisy",
             "detection_seeds": "list of int: random streams of the noisy detections"}
TRACK_ARGS = {"--ego-compensation": "ego_compensation"}
BASELINES = {"kalman": {"tracker": "kalman"},
             "kalman-ego": {"tracker": "kalman", "ego_compensation": True},
             "bytetrack": {"tracker": "boxmot:bytetrack"}, "botsort": {"tracker": "boxmot:botsort"},
             "ocsort": {"tracker": "boxmot:ocsort"}}
BOUNDS = {"oracle-past": {"tracker": "oracle-past"}, "oracle": {"tracker": "oracle"}}
ROWS = {**BASELINES, **BOUNDS}
MODEL_ROW = "model"


class ZooError(ValueError):
    """An unknown model, a bad recipe, a weight file that does not match the index (the message names it)."""


# ----------------------------------------------------------------------------------------------- index
def read_index(zoo_dir: Path | None = None) -> list[dict[str, Any]]:
    """The entries of ``zoo/index.json`` (ZooError naming the file and the entry on a malformed one)."""
    zoo_dir = zoo_dir or ZOO_DIR
    path = zoo_dir / "index.json"
    if not path.is_file():
        raise ZooError(f"{path}: no model zoo index")
    try:
        entries = json.loads(path.read_text())
    except ValueError as exc:
        raise ZooError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(entries, list):
        raise ZooError(f"{path}: expected a list of entries")
    for i, entry in enumerate(entries):
        missing = [k for k in INDEX_KEYS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise ZooError(f"{path}: entry {i} lacks {missing}")
        unknown = sorted(set(entry) - set(INDEX_KEYS))
        if unknown:
            raise ZooError(f"{path}: entry {i} ({entry['name']}) has unknown keys {unknown}")
    if sum(bool(e["headline"]) for e in entries) != 1:
        raise ZooError(f"{path}: exactly one entry must have headline=true")
    return entries


def zoo_entry(name: str, zoo_dir: Path | None = None) -> dict[str, Any]:
    """The index entry called ``name`` (ZooError listing the known names otherwise)."""
    zoo_dir = zoo_dir or ZOO_DIR
    entries = read_index(zoo_dir)
    for entry in entries:
        if entry["name"] == name:
            return entry
    raise ZooError(f"unknown zoo model {name!r}; known: {', '.join(e['name'] for e in entries)}")


def headline_entry(zoo_dir: Path | None = None) -> dict[str, Any]:
    return next(e for e in read_index(zoo_dir) if e["headline"])


def headline_specs(zoo_dir: Path | None = None) -> list[dict[str, Any]]:
    """``compare_trackers`` specs of the shipped headline model (named ``zoo:NAME``, with its track flags) and, when
    it reads the camera's motion, the Kalman filter that reads the same odometry (``kalman-ego``); [] without a zoo
    index."""
    if not ((zoo_dir or ZOO_DIR) / "index.json").is_file():
        return []
    entry = headline_entry(zoo_dir)
    options = track_options(entry["track_args"])
    specs = [{"name": ZOO_PREFIX + entry["name"], "tracker": "trackssm", "checkpoint": ZOO_PREFIX + entry["name"],
              **options}]
    if options.get("ego_compensation"):
        specs.append({"name": "kalman-ego", "checkpoint": None, **BASELINES["kalman-ego"]})
    return specs


def verified_weights(entry: Mapping[str, Any], zoo_dir: Path | None = None) -> Path:
    """The entry's weight file after its sha256 was checked against the index (ZooError naming both)."""
    zoo_dir = zoo_dir or ZOO_DIR
    path = zoo_dir.parent / entry["weights"]  # repository-relative, as the recipe: zoo/<name>.pth
    if not path.is_file():
        raise ZooError(f"{path}: weight file of zoo model {entry['name']!r} is missing")
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        raise ZooError(f"{path}: sha256 {digest} differs from {zoo_dir / 'index.json'}'s {entry['sha256']} for "
                       f"zoo model {entry['name']!r}; refusing to load it")
    return path


def resolve_checkpoint(spec: str | os.PathLike | None, zoo_dir: Path | None = None) -> str | None:
    """``zoo:NAME`` -> the verified path of the shipped weights; any other value is returned unchanged."""
    zoo_dir = zoo_dir or ZOO_DIR
    if spec is None or not str(spec).startswith(ZOO_PREFIX):
        return None if spec is None else str(spec)
    return str(verified_weights(zoo_entry(str(spec)[len(ZOO_PREFIX):], zoo_dir), zoo_dir))


def track_options(track_args: Sequence[str]) -> dict[str, Any]:
    """``["--ego-compensation"]`` -> ``{"ego_compensation": True}`` (ZooError on a flag the zoo does not know)."""
    options = {}
    for arg in track_args:
        if arg not in TRACK_ARGS:
            raise ZooError(f"unknown track flag {arg!r} in a zoo entry or recipe (known: {', '.join(TRACK_ARGS)})")
        options[TRACK_ARGS[arg]] = True
    return options


# --------------------------------------------------------------------------------------------- recipes
def _check_keys(mapping: Any, allowed: Mapping[str, str], where: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise ZooError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        raise ZooError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(allowed)})")
    return mapping


def recipe_path(name: str, recipe_dir: Path = RECIPE_DIR) -> Path:
    path = recipe_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in recipe_dir.glob("*.yaml"))
        raise ZooError(f"unknown zoo recipe {name!r} ({path} does not exist); known: {', '.join(known)}")
    return path


def load_recipe(name_or_path: str | os.PathLike, recipe_dir: Path = RECIPE_DIR) -> dict[str, Any]:
    """Read and check a recipe: every key known, every stage's config keys known to the training config."""
    from trackssm_lib.training import load_config  # checks the phase configs' keys and values

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = recipe_path(str(name_or_path), recipe_dir)
    elif not path.is_file():
        raise ZooError(f"{path}: recipe file does not exist")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ZooError(f"{path}: not valid YAML ({exc})") from exc
    _check_keys(recipe, RECIPE_KEYS, str(path))
    missing = [k for k in ("description", "data", "stages", "model", "evaluation") if k not in recipe]
    if missing:
        raise ZooError(f"{path}: missing key {missing[0]!r}")
    recipe = copy.deepcopy(recipe)
    recipe.setdefault("seed", 0)
    recipe.setdefault("track_args", [])
    recipe.setdefault("differs", "")
    recipe["name"], recipe["path"] = path.stem, str(path)
    data = _check_keys(recipe["data"], DATA_KEYS, f"{path}: data")
    _check_keys(data.get("synthetic") or {}, {"version": "", "seed": "", "scenes": ""}, f"{path}: data.synthetic")
    _check_keys(recipe["evaluation"], EVAL_KEYS, f"{path}: evaluation")
    splits = recipe["evaluation"].get("splits") or {}
    if not isinstance(splits, dict):
        raise ZooError(f"{path}: evaluation.splits: expected a mapping split -> rows")
    for split, rows in splits.items():
        for row in rows or []:
            if row not in ROWS:
                raise ZooError(f"{path}: evaluation.splits.{split}: unknown row {row!r} (known: {', '.join(ROWS)})")
    track_options(recipe["track_args"])
    if not isinstance(recipe["stages"], list) or not recipe["stages"]:
        raise ZooError(f"{path}: stages must be a non-empty list")
    seen: list[str] = []
    for i, stage in enumerate(recipe["stages"]):
        where = f"{path}: stages[{i}]"
        _check_keys(stage, STAGE_KEYS, where)
        for key in ("name", "phase", "config"):
            if key not in stage:
                raise ZooError(f"{where}: missing key {key!r}")
        if stage["name"] in seen:
            raise ZooError(f"{where}: stage name {stage['name']!r} repeats")
        if stage["phase"] not in (0, 1, 2):
            raise ZooError(f"{where}: phase must be 0, 1 or 2, got {stage['phase']!r}")
        if stage["phase"] > 0 and stage.get("start") not in seen:
            raise ZooError(f"{where}: start must name an earlier stage ({', '.join(seen) or 'none yet'}), got "
                           f"{stage.get('start')!r}")
        config = REPO_ROOT / stage["config"]
        try:
            load_config(config, [f"{k}={json.dumps(v)}" for k, v in (stage.get("set") or {}).items()])
        except (ValueError, FileNotFoundError) as exc:
            raise ZooError(f"{where} ({stage['name']}): {exc}") from exc
        seen.append(stage["name"])
    if recipe["model"] not in seen:
        raise ZooError(f"{path}: model must name a stage ({', '.join(seen)}), got {recipe['model']!r}")
    return recipe


def list_recipes(recipe_dir: Path = RECIPE_DIR) -> list[str]:
    return sorted(p.stem for p in recipe_dir.glob("*.yaml"))


# ------------------------------------------------------------------------------------------------ stages
def _digest(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stage_done(folder: Path, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The finished stage's record, None when it has not finished; ZooError when it finished with other settings."""
    marker = folder / "stage.json"
    if not marker.is_file():
        return None
    record = json.loads(marker.read_text())
    if record.get("settings_digest") != _digest(settings):
        raise ZooError(f"{marker}: this stage finished with other settings than the recipe's now "
                       f"({record.get('settings')} vs {dict(settings)}); use another --out")
    return record


def _finish_stage(folder: Path, settings: Mapping[str, Any], **record: Any) -> dict[str, Any]:
    record = {"settings": dict(settings), "settings_digest": _digest(settings), **record}
    write_json_atomic(folder / "stage.json", record)
    return record


def _logger(out: Path) -> logging.Logger:
    log = logging.getLogger(f"trackssm_lib.zoo.{out}")
    log.setLevel(logging.INFO)
    if not log.handlers:
        out.mkdir(parents=True, exist_ok=True)
        for handler in (logging.FileHandler(out / "zoo.log"), logging.StreamHandler(sys.stderr)):
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
            log.addHandler(handler)
    return log


def _data_stage(recipe: Mapping[str, Any], out: Path, dataroot: str | None, version: str | None,
                log: logging.Logger) -> tuple[Path, dict[str, Any]]:
    """The dataset (given, or the synthetic default, generated once under data/) and the recipe's export."""
    from trackssm_lib.export import prepare
    from trackssm_lib.nuscenes_db import load_nuscenes

    data = recipe["data"]
    if dataroot:
        if not version:
            raise ZooError("--dataroot needs --version (e.g. v1.0-trainval)")
        from trackssm_lib.nuscenes_db import table_checksums

        # by content: the same tables moved to another disk are the same data stage
        tables = json.dumps(table_checksums(dataroot, version), sort_keys=True)
        source = {"nuscenes": version, "tables_sha256": hashlib.sha256(tables.encode()).hexdigest()}
    else:
        syn = data.get("synthetic") or {}
        version = str(syn.get("version", "v1.0-trainval"))
        source = {"synthetic": {"version": version, "seed": int(syn.get("seed", 0)), "scenes": syn.get("scenes")}}
    settings = {"source": source, "max_scenes": data.get("max_scenes") or {}}
    export = out / "export"
    if (record := _stage_done(out / "stages" / "data", settings)) is not None:
        log.info("data: finished earlier (%s)", export)
        return export, record
    t0 = time.time()
    if not dataroot:
        from trackssm_lib.synth import generate_dataset

        syn = source["synthetic"]
        dataroot = str(REPO_ROOT / "data" / f"synth-{version}-s{syn['seed']}")
        if syn["scenes"] is not None:
            dataroot += f"-{syn['scenes']}"
        log.info("data: synthetic %s (seed %d) in %s", version, syn["seed"], dataroot)
        generate_dataset(dataroot, version=version, n_scenes=syn["scenes"], seed=syn["seed"], images=False)
    nusc = load_nuscenes(Path(dataroot), version)
    splits = (("train", "val", "test") if version == "v1.0-trainval" else ("mini_train", "mini_val"))
    max_scenes = export_max_scenes(settings["max_scenes"], version, splits, recipe["path"])
    for split in splits:
        log.info("data: export %s (%s scenes)", split, max_scenes.get(split) or "all")
        prepare(dataroot, version, export, split=split, max_scenes=max_scenes.get(split),
                workers=int(data.get("workers", 1)), nusc=nusc, progress=True)
    record = _finish_stage(out / "stages" / "data", settings, dataroot=str(dataroot), version=version,
                           minutes=(time.time() - t0) / 60)
    return export, record


def export_max_scenes(max_scenes: Mapping[str, Any], version: str, splits: Sequence[str],
                      where: str) -> dict[str, Any]:
    """The recipe's ``max_scenes`` (named in either version's terms: ``train``/``val``/``test`` or ``mini_train``/
    ``mini_val``) keyed by this version's split names; on v1.0-mini ``val`` and ``test`` are both ``mini_val``."""
    from trackssm_lib.splits import equivalent_split

    out: dict[str, Any] = {}
    for key, value in max_scenes.items():
        split = equivalent_split(version, key)
        if split not in splits:
            raise ZooError(f"{where}: data.max_scenes: unknown split {key!r} for {version} (splits: "
                           f"{', '.join(splits)})")
        if split in out and out[split] != value:
            raise ZooError(f"{where}: data.max_scenes: {key!r} is {split} on {version}, which another key sets "
                           f"to {out[split]!r}, not {value!r}")
        out[split] = value
    return out


def _stage_settings(recipe: Mapping[str, Any], stage: Mapping[str, Any], seed: int) -> dict[str, Any]:
    return {"phase": stage["phase"], "config": stage["config"], "start": stage.get("start"),
            "set": dict(stage.get("set") or {}), "seed": seed}


def _stage_overrides(stage: Mapping[str, Any], out: Path, seed: int, start: Path | None) -> list[str]:
    """``--set`` items of one stage: its keys, the seed, its folder and its start weights."""
    values = dict(stage.get("set") or {})
    for key in ("mot17_root",):
        if values.get(key) and not Path(values[key]).is_absolute():
            values[key] = str(REPO_ROOT / values[key])
    values.update(seed=seed, output_dir=str(out), progress=True)
    if stage["phase"] == 1:
        values["init_checkpoint"] = str(start)
    elif stage["phase"] == 2:
        values["phase1_checkpoint"] = str(start)
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def stage_weights(out: Path, stage: Mapping[str, Any]) -> Path:
    """The weights a stage leaves: phase 0's pretrained model, else the phase's best checkpoint."""
    folder = out / "stages" / stage["name"] / "weights"
    return {0: folder / "phase0" / "phase0_pretrain.pth", 1: folder / "phase1" / "phase1_decoder_best.pth",
            2: folder / "phase2" / "phase2_full_best.pth"}[int(stage["phase"])]


def _train_stage(recipe: Mapping[str, Any], stage: Mapping[str, Any], out: Path, export: Path, seed: int,
                 log: logging.Logger) -> dict[str, Any]:
    from trackssm_lib.training import ResumeConflictError, pretrain_main, train_main

    settings = _stage_settings(recipe, stage, seed)
    folder = out / "stages" / stage["name"]
    if (record := _stage_done(folder, settings)) is not None:
        log.info("stage %s: finished earlier (%.1f min)", stage["name"], record["minutes"])
        return record
    start = None
    if stage["phase"] > 0:
        start_stage = next(s for s in recipe["stages"] if s["name"] == stage["start"])
        start = stage_weights(out, start_stage)
    overrides = _stage_overrides(stage, folder, seed, start)
    config = REPO_ROOT / stage["config"]
    if stage["phase"] == 0:
        log.info("stage %s: phase 0 pretraining", stage["name"])
        summary = pretrain_main(config, export, overrides)
        minutes = summary["seconds"] / 60
    else:
        last = folder / "weights" / f"phase{stage['phase']}" / \
            ("phase1_decoder_last.pth" if stage["phase"] == 1 else "phase2_full_last.pth")
        resume = last.is_file()
        log.info("stage %s: phase %d from %s%s", stage["name"], stage["phase"], start,
                 " (resumed)" if resume else "")
        try:  # no last checkpoint: nothing of this unfinished stage to keep, so a new run replaces what is there
            summary = train_main(config, export, overrides, resume=resume, overwrite=not resume)
        except ResumeConflictError as err:
            raise ZooError(f"stage {stage['name']}: its interrupted run in {folder} cannot resume with the recipe's "
                           f"settings now ({err}); use another --out, or delete {folder} to train the stage "
                           f"again") from err
        minutes = sum(h["seconds"] for h in summary.pop("history")) / 60  # every epoch, resumed runs' too
    record = _finish_stage(folder, settings, minutes=minutes, summary=summary, weights=str(stage_weights(out, stage)))
    log.info("stage %s: done in %.1f min", stage["name"], minutes)
    return record


def train_stages(recipe: Mapping[str, Any], out: Path, dataroot: str | None = None, version: str | None = None,
                 seed: int | None = None, log: logging.Logger | None = None) -> tuple[Path, dict[str, Any]]:
    """The data stage and every training stage of ``recipe`` under ``out`` (finished ones skipped)."""
    log = log or _logger(out)
    seed = int(recipe["seed"] if seed is None else seed)
    export, data_record = _data_stage(recipe, out, dataroot, version, log)
    records = {"data": data_record}
    for stage in recipe["stages"]:
        records[stage["name"]] = _train_stage(recipe, stage, out, export, seed, log)
    return export, records


# ------------------------------------------------------------------------------------------------ scoring
def comparison_specs(checkpoint: str, track_args: Sequence[str], rows: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The model (with its track flags) beside the named baselines and bounds, as ``compare_trackers`` specs."""
    specs = [{"name": MODEL_ROW, "tracker": "trackssm", "checkpoint": checkpoint, **track_options(track_args)}]
    for name in rows:
        if name not in ROWS:
            raise ZooError(f"unknown baseline or bound {name!r} (known: {', '.join(ROWS)})")
        specs.append({"name": name, "checkpoint": None, **ROWS[name]})
    return specs


def detection_runs(detections: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """``gt`` once (it has no random stream), ``noisy`` once per seed."""
    runs = []
    for det in detections:
        runs += [(det, 0)] if det == "gt" else [(det, int(s)) for s in seeds]
    return runs


def score(checkpoint: str, track_args: Sequence[str], data: str | Path, split: str, out: str | Path,
          detections: Sequence[str] = ("noisy",), seeds: Sequence[int] = (0,), rows: Sequence[str] = (),
          progress: bool = True) -> dict[str, Any]:
    """Track and score the model and the baselines on every detection run of one split (finished runs reused).

    Returns ``{"runs": {"noisy seed 0": {tracker: {HOTA, MOTA, IDF1, IDSW, fps}}}, "total": {tracker: {HOTA (mean),
    MOTA (mean), IDF1 (mean), IDSW (sum)}}, "sequences": n}``; a tracker that could not run (BoxMOT missing) has
    ``{"status": "unavailable", "reason": ...}`` and no numbers.
    """
    from trackssm_lib.comparison import COMBINED, compare_trackers

    specs = comparison_specs(checkpoint, track_args, rows)
    runs: dict[str, dict[str, Any]] = {}
    sequences = None
    for det, seed in detection_runs(detections, seeds):
        label = det if det == "gt" else f"{det} seed {seed}"
        rows = compare_trackers(data, split, specs, detections=[det], seed=seed, progress=progress,
                                out_dir=Path(out) / split / label.replace(" ", "-"))
        runs[label] = {}
        for r in rows:
            if r["class_name"] != COMBINED["combined_class_avg"]:
                continue
            sequences = r["sequences"]
            runs[label][r["tracker"]] = ({"status": "unavailable", "reason": r["reason"]} if r["status"] != "ok" else
                                         {"HOTA": r["HOTA"], "MOTA": r["MOTA"], "IDF1": r["IDF1"],
                                          "IDSW": int(r["IDSW"]), "fps": r["fps"]})
    total = {}
    for spec in specs:
        got = [run[spec["name"]] for run in runs.values() if "HOTA" in run[spec["name"]]]
        if len(got) == len(runs):
            total[spec["name"]] = {**{m: sum(g[m] for g in got) / len(got) for m in ("HOTA", "MOTA", "IDF1")},
                                   "IDSW": sum(g["IDSW"] for g in got)}
    return {"runs": runs, "total": total, "sequences": sequences}


def against(result: Mapping[str, Any], baseline: str) -> dict[str, Any] | None:
    """The model's HOTA gain and IDSW ratio against one baseline over a split's detection runs (None: missing)."""
    total = result["total"]
    if MODEL_ROW not in total or baseline not in total:
        return None
    m, b = total[MODEL_ROW], total[baseline]
    return {"hota_gain": m["HOTA"] - b["HOTA"], "idsw_ratio": m["IDSW"] / b["IDSW"] if b["IDSW"] else None}


def machine_name() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), {gpu}, torch {torch.__version__}"


def train_recipe(name_or_path: str, out: str | Path | None = None, dataroot: str | None = None,
                 version: str | None = None, seed: int | None = None, progress: bool = True) -> dict[str, Any]:
    """``zoo train``: data, every training stage and the scoring of one recipe; writes ``OUT/zoo_record.json``."""
    recipe = load_recipe(name_or_path)
    seed = int(recipe["seed"] if seed is None else seed)
    if out is None:  # another seed gets its own folder
        out = REPO_ROOT / "outputs" / "zoo" / (recipe["name"] + (f"-seed{seed}" if seed != recipe["seed"] else ""))
    out = Path(out)
    log = _logger(out)
    log.info("zoo train %s (seed %d) -> %s", recipe["name"], seed, out)
    export, records = train_stages(recipe, out, dataroot, version, seed, log)
    model_stage = next(s for s in recipe["stages"] if s["name"] == recipe["model"])
    checkpoint = str(stage_weights(out, model_stage))
    ev = recipe["evaluation"]
    recipe_file = Path(recipe["path"]).resolve()
    record = {"name": recipe["name"], "recipe": str(recipe_file.relative_to(REPO_ROOT))
              if recipe_file.is_relative_to(REPO_ROOT) else recipe["path"],
              "seed": seed, "checkpoint": checkpoint, "track_args": list(recipe["track_args"]),
              "data": records["data"]["settings"]["source"], "data_minutes": round(records["data"]["minutes"], 1),
              "train_minutes": round(sum(r.get("minutes", 0.0) for k, r in records.items() if k != "data"), 1),
              "stage_minutes": {k: round(r["minutes"], 1) for k, r in records.items()},
              "machine": machine_name(), "results": {}, "against": {}, "complete": False}
    for split, rows in (ev.get("splits") or {}).items():
        log.info("scoring on %s beside %s", split, ", ".join(rows or []) or "nothing")
        result = score(checkpoint, recipe["track_args"], export, split, out / "eval",
                       detections=[ev.get("detections", "noisy")], seeds=ev.get("detection_seeds", [0]),
                       rows=rows or [], progress=progress)
        record["results"][split] = result
        record["against"][split] = {b: against(result, b) for b in ("kalman", "kalman-ego")}
        for b, cmp in record["against"][split].items():
            if cmp is not None:
                log.info("%s: model vs %s: HOTA %+.2f, IDSW x%s", split, b, cmp["hota_gain"],
                         "n/a" if cmp["idsw_ratio"] is None else f"{cmp['idsw_ratio']:.3f}")
        write_json_atomic(out / "zoo_record.json", record)  # each scored split as soon as it is done
    record["complete"] = True
    write_json_atomic(out / "zoo_record.json", record)
    log.info("zoo record: %s", out / "zoo_record.json")
    return record


def evaluate_entry(name: str, data: str | Path, split: str, out: str | Path | None = None,
                   detections: Sequence[str] = ("noisy",), seeds: Sequence[int] = (0,),
                   rows: Sequence[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """``zoo evaluate``: a shipped model with its track flags beside the baselines and bounds (by default every row
    its recipe scores on any split)."""
    entry = zoo_entry(name)
    checkpoint = str(verified_weights(entry))
    recipe = load_recipe(REPO_ROOT / entry["recipe"])
    ev = recipe["evaluation"]
    out = Path(out) if out else REPO_ROOT / "outputs" / "zoo_eval" / name / Path(data).resolve().name
    result = score(checkpoint, entry["track_args"], data, split, out, detections=detections, seeds=seeds,
                   rows=list(dict.fromkeys(r for rs in (ev.get("splits") or {}).values() for r in rs or []))
                   if rows is None else rows, progress=progress)
    result.update(name=name, data=str(Path(data).resolve()), split=split,
                  against={b: against(result, b) for b in ("kalman", "kalman-ego")})
    write_json_atomic(out / f"zoo_eval_{split}.json", result)
    return result


# ------------------------------------------------------------------------------------------------ shipping
def ship(record_path: str | Path, headline: bool = False, extra_results: Mapping[str, Any] | None = None,
         zoo_dir: Path | None = None) -> dict[str, Any]:
    """Copy a finished recipe's model into ``zoo/<name>.pth`` (weights and config, no optimiser state) and write its
    ``index.json`` entry from the ``zoo_record.json`` (maintainers' step; the entry replaces one of the same name)."""
    zoo_dir = zoo_dir or ZOO_DIR
    from trackssm_lib.model import load_checkpoint, save_checkpoint

    record = json.loads(Path(record_path).read_text())
    model = load_checkpoint(record["checkpoint"])
    weights = zoo_dir / f"{record['name']}.pth"
    meta = model.checkpoint_info["meta"].get("extra", {})
    if not (weights.is_file() and _same_weights(load_checkpoint(weights), model)):  # kept: no new blob in git
        tmp = weights.with_name(f".{weights.name}.tmp")
        save_checkpoint(tmp, model, phase=meta.get("phase"), epoch=meta.get("epoch"), val_loss=meta.get("val_loss"),
                        recipe=record["recipe"], seed=record["seed"])
        load_checkpoint(tmp)  # strict round trip
        os.replace(tmp, weights)
    entry = {"name": record["name"], "weights": f"{zoo_dir.name}/{weights.name}", "sha256": file_sha256(weights),
             "recipe": record["recipe"], "track_args": record["track_args"], "headline": bool(headline),
             "train_minutes": record["train_minutes"], "machine": record["machine"],
             "results": {**record["results"], **(extra_results or {})}}
    path = zoo_dir / "index.json"
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries = [e for e in entries if e["name"] != entry["name"]]
    if headline:
        for e in entries:
            e["headline"] = False
    entries.append(entry)
    write_json_atomic(path, entries, indent=1)
    (zoo_dir / "README.md").write_text(zoo_readme(entries))
    return entry


def _same_weights(a: Any, b: Any) -> bool:
    """Two models with the same architecture settings and bit-identical parameters and buffers."""
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    return (a.config == b.config and sa.keys() == sb.keys()
            and all(sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa))


def _cells(total: Mapping[str, Any] | None) -> list[str]:
    if not total:
        return ["-"] * 4
    return [f"{total['HOTA']:.2f}", f"{total['IDF1']:.2f}", f"{total['MOTA']:.2f}", f"{int(total['IDSW']):,}"]


TRACKER_LABELS = {MODEL_ROW: "**the model**", "kalman": "Kalman", "kalman-ego": "Kalman + ego compensation",
                  "bytetrack": "BoxMOT ByteTrack", "botsort": "BoxMOT BoT-SORT", "ocsort": "BoxMOT OC-SORT",
                  "oracle-past": "bound: past oracle", "oracle": "bound: oracle"}


def zoo_readme(entries: Sequence[Mapping[str, Any]]) -> str:
    """``zoo/README.md``, made from the index (every number is the index's; nothing typed in)."""
    lines = ["# Model zoo", "",
             "Shipped TrackSSM weights, each made by one recipe from nothing: "
             "`python -m trackssm_lib zoo train NAME`. Use one with `--checkpoint zoo:NAME` wherever a checkpoint "
             "path goes, and with its track flags. Generated from `index.json` by `trackssm_lib.zoo.ship`; do not "
             "edit by hand.", "",
             "| model | headline | what differs from the official TrackSSM | track flags | training (minutes) | "
             "machine |", "| --- | --- | --- | --- | ---: | --- |"]
    for e in entries:
        recipe = load_recipe(REPO_ROOT / e["recipe"])
        lines.append(f"| `{e['name']}` ([recipe](../{e['recipe']})) | {'yes' if e['headline'] else ''} | "
                     f"{recipe['differs']} | {' '.join(e['track_args']) or '-'} | {e['train_minutes']:.0f} | "
                     f"{e['machine']} |")
    for e in entries:
        splits = list(e["results"])
        lines += ["", f"## `{e['name']}`", "", recipe_description(e), "",
                  "HOTA / IDF1 / MOTA / IDSW (class average; IDSW summed over the classes and detection runs; HOTA, "
                  "IDF1 and MOTA averaged over the runs; `-`: not scored for this model). " + "; ".join(
                      f"{s}: {e['results'][s].get('sequences')} sequences, {', '.join(e['results'][s]['runs'])}"
                      for s in splits) + ".", "",
                  "| tracker | " + " | ".join(f"{s} {m}" for s in splits for m in ("HOTA", "IDF1", "MOTA", "IDSW"))
                  + " |", "| --- |" + " ---: |" * (4 * len(splits))]
        trackers = list(dict.fromkeys(t for s in splits for t in e["results"][s]["runs"][
            next(iter(e["results"][s]["runs"]))]))
        for t in trackers:
            cells = [c for s in splits for c in _cells(e["results"][s]["total"].get(t))]
            label = TRACKER_LABELS.get(t, t) + (f" ({' '.join(e['track_args'])})" if t == MODEL_ROW and
                                                e["track_args"] else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        for s in splits:
            parts = []
            for b in ("kalman", "kalman-ego"):
                cmp = against(e["results"][s], b)
                if cmp and cmp["idsw_ratio"] is not None:
                    parts.append(f"against {TRACKER_LABELS[b]} HOTA {cmp['hota_gain']:+.2f}, IDSW "
                                 f"x{cmp['idsw_ratio']:.3f}")
            if parts:
                lines.append(f"\n{s}: the model {'; '.join(parts)}.")
    return "\n".join(lines) + "\n"


def recipe_description(entry: Mapping[str, Any]) -> str:
    recipe = load_recipe(REPO_ROOT / entry["recipe"])
    return f"{recipe['description'][0].upper()}{recipe['description'][1:]}. Weights `{entry['weights']}` (sha256 " \
           f"`{entry['sha256'][:16]}...`)."


# ------------------------------------------------------------------------------------------------------ CLI
def _fmt(v: Any, digits: int = 2) -> str:
    return "-" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:.{digits}f}")


def _list_command(args: Any) -> int:
    entries = read_index()
    print(f"{'name':<20}{'headline':>9}{'train min':>10}  {'test HOTA':>9} {'IDSW':>6}  track flags / recipe")
    for e in entries:
        test = (e["results"].get("test") or {}).get("total", {}).get(MODEL_ROW, {})
        print(f"{e['name']:<20}{'yes' if e['headline'] else '':>9}{_fmt(e['train_minutes'], 0):>10}  "
              f"{_fmt(test.get('HOTA')):>9} {_fmt(test.get('IDSW')):>6}  {' '.join(e['track_args']) or '-'} / "
              f"{e['recipe']}")
    return 0


def _train_command(args: Any) -> int:
    record = train_recipe(args.name, out=args.out, dataroot=args.dataroot, version=args.version, seed=args.seed,
                          progress=not args.quiet)
    print(json.dumps({k: record[k] for k in ("name", "seed", "train_minutes", "against")}, indent=1))
    return 0


def _evaluate_command(args: Any) -> int:
    result = evaluate_entry(args.name, args.data, args.split, out=args.out, detections=args.detections,
                            seeds=args.seeds, progress=not args.quiet)
    print(f"{'tracker':<14}{'HOTA':>8}{'MOTA':>8}{'IDF1':>8}{'IDSW':>8}   ({result['sequences']} sequences, "
          f"{', '.join(result['runs'])})")
    for tracker, t in result["total"].items():
        print(f"{tracker:<14}{t['HOTA']:8.2f}{t['MOTA']:8.2f}{t['IDF1']:8.2f}{t['IDSW']:8d}")
    for b, cmp in result["against"].items():
        if cmp:
            print(f"model vs {b}: HOTA {cmp['hota_gain']:+.2f}, IDSW x{_fmt(cmp['idsw_ratio'], 3)}")
    return 0


def _ship_command(args: Any) -> int:
    extra = {}
    for item in args.extra:
        label, _, path = item.partition("=")
        if not label or not path:
            raise ZooError(f"--extra wants LABEL=zoo_eval_*.json, got {item!r}")
        result = json.loads(Path(path).read_text())
        extra[label] = {k: result[k] for k in ("runs", "total", "sequences")}
    entry = ship(args.record, headline=args.headline, extra_results=extra)
    print(f"shipped {entry['name']}: {ZOO_DIR.parent / entry['weights']} (sha256 {entry['sha256']})")
    return 0


def add_zoo_parser(subparsers: Any) -> None:
    """Register ``zoo list | train | evaluate`` on the ``python -m trackssm_lib`` sub-parsers."""
    p = subparsers.add_parser("zoo", help="the model zoo: shipped TrackSSM weights and the recipes that make them")
    sub = p.add_subparsers(dest="zoo_command", required=True)
    q = sub.add_parser("list", help="the shipped models (zoo/index.json)")
    q.set_defaults(func=_list_command)
    q = sub.add_parser("train", help="run a recipe (configs/zoo/NAME.yaml) end to end; every stage resumes")
    q.add_argument("name", help="recipe name (configs/zoo/NAME.yaml) or a recipe file")
    q.add_argument("--dataroot", default=None, help="real nuScenes dataroot (default: the recipe's synthetic data)")
    q.add_argument("--version", default=None, help="nuScenes version of --dataroot (v1.0-trainval, v1.0-mini)")
    q.add_argument("--out", default=None, help="run folder (default: outputs/zoo/NAME)")
    q.add_argument("--seed", type=int, default=None, help="training seed of every stage (default: the recipe's)")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_train_command)
    q = sub.add_parser("evaluate", help="score a shipped model with its track flags beside the baselines")
    q.add_argument("name", help="zoo model name (zoo list)")
    q.add_argument("--data", required=True, help="prepared export (python -m trackssm_lib prepare)")
    q.add_argument("--split", required=True, help="split of the export (test, val, mini_val, ...)")
    q.add_argument("--detections", nargs="+", default=["noisy"], choices=["gt", "noisy"])
    q.add_argument("--seeds", nargs="+", type=int, default=[0], help="random streams of the noisy detections")
    q.add_argument("--out", default=None, help="default: outputs/zoo_eval/NAME/<export folder name>")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_evaluate_command)
    q = sub.add_parser("ship", help="maintainers: copy a finished recipe's model into zoo/ and index it")
    q.add_argument("record", help="OUT/zoo_record.json of a finished `zoo train`")
    q.add_argument("--headline", action="store_true", help="make it the headline entry (the only one)")
    q.add_argument("--extra", nargs="+", default=[], metavar="LABEL=JSON",
                   help="further results from `zoo evaluate` (e.g. 'real scene-0916=.../zoo_eval_mini_val.json')")
    q.set_defaults(func=_ship_command)
