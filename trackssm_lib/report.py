"""The report: run the notebooks with papermill from a profile, then build the Jupyter Book.

A profile (``configs/report_*.yaml``) says which dataset to use (a real nuScenes dataroot, or the synthetic dataset
in the nuScenes schema generated on first use), where outputs go, and the parameters of each notebook. Steps:

1. dataroot: the ``dataroot`` argument, else the profile's ``dataroot``, else ``$NUSC_ROOT``, else the synthetic
   dataset (generated into the profile's ``synthetic.folder``; reused when complete);
2. before any notebook runs, the parameters of every one are checked: a name the notebook does not declare, or a
   training chapter's ``overrides`` key that is not a training config key (or a value ``load_config`` refuses),
   stops the run with the profile file, the chapter and the key named (:func:`check_training_parameters`); then
   each notebook ``notebooks/<name>.ipynb`` is executed by papermill (a kernel running this interpreter) into
   ``<book_dir>/chapters/<name>.ipynb`` (written to a temporary file, then renamed); the notebook records its key
   figures in ``<output_dir>/<name>.json``; the executed copy is made fit for the book (:func:`publishable`);
3. ``jupyter-book build <book_dir>`` (execution is off in ``_config.yml``: the book shows the executed copies).

Relative paths in a profile are relative to the project root (the folder holding ``notebooks/`` and ``book/``).
A second run reuses what is already prepared: the dataset is reused and the export skips complete sequences.

A chapter run on its own (JupyterLab, plain papermill) gets the same dataset, export and output folder from
:func:`chapter_inputs` and makes what the earlier chapters would have made with :func:`ensure_prerequisites`.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from trackssm_lib.fileio import write_json_atomic, write_text_atomic
from trackssm_lib.records import load_figures
from trackssm_lib.splits import equivalent_split

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KERNEL_NAME = "python3"
VENV_KERNEL_NAME = "trackssm-nuscenes"

PROFILE_KEYS = {
    "title": "book subtitle for this run",
    "version": "nuScenes version (v1.0-mini | v1.0-trainval)",
    "dataroot": "real nuScenes dataroot (null: $NUSC_ROOT, else the synthetic dataset)",
    "synthetic": "mapping: folder, scenes, seed, images",
    "output_dir": "export and recorded figures",
    "book_dir": "the Jupyter Book source folder",
    "notebook_dir": "where the notebooks are",
    "notebooks": "notebook names, in order",
    "execution_timeout_s": "per-cell timeout",
    "parameters": "mapping: notebook name -> its parameters",
}
SYNTHETIC_KEYS = ("folder", "scenes", "seed", "images")
DEFAULTS = {
    "title": "report", "version": "v1.0-mini", "dataroot": None,
    "synthetic": {"folder": None, "scenes": None, "seed": 0, "images": True},
    "output_dir": "outputs/report", "book_dir": "book", "notebook_dir": "notebooks",
    "notebooks": ["01_projection_sanity", "02_interpolation"], "execution_timeout_s": 1800, "parameters": {},
}


class ReportError(RuntimeError):
    """A notebook failed or the book did not build; the message says which and where the evidence is."""


def _resolve(path: str | Path | None, base: Path = PROJECT_ROOT) -> Path | None:
    if path is None:
        return None
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else base / path


def load_profile(profile: str | Path) -> dict:
    """Read and validate a profile; unknown keys raise ValueError naming the key and the file."""
    path = Path(profile)
    if not path.is_file() and not path.is_absolute() and (PROJECT_ROOT / path).is_file():
        path = PROJECT_ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"report profile {profile} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"cannot parse report profile {path}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"report profile {path} must be a mapping of keys to values")
    for key in data:
        if key not in PROFILE_KEYS:
            raise ValueError(f"unknown key {key!r} in report profile {path}; known keys: {', '.join(PROFILE_KEYS)}")
    synthetic = data.get("synthetic") or {}
    if not isinstance(synthetic, dict):
        raise ValueError(f"'synthetic' in report profile {path} must be a mapping")
    for key in synthetic:
        if key not in SYNTHETIC_KEYS:
            raise ValueError(f"unknown key 'synthetic.{key}' in report profile {path}; "
                             f"known keys: {', '.join(SYNTHETIC_KEYS)}")
    params = data.get("parameters") or {}
    if not isinstance(params, dict) or not all(isinstance(v, dict) or v is None for v in params.values()):
        raise ValueError(f"'parameters' in report profile {path} must map notebook names to mappings")
    out = {**DEFAULTS, **{k: v for k, v in data.items() if v is not None or k == "dataroot"}}
    out["synthetic"] = {**DEFAULTS["synthetic"], **synthetic}
    out["parameters"] = {k: dict(v or {}) for k, v in params.items()}
    out["notebooks"] = list(out["notebooks"])
    for name in out["parameters"]:
        if name not in out["notebooks"]:
            raise ValueError(f"report profile {path} has parameters for {name!r}, which is not one of its "
                             f"notebooks {out['notebooks']}")
    out["_path"] = path
    return out


def notebook_parameters(notebook: Path) -> dict:
    """Names (and default source text) of the notebook's ``parameters`` cell."""
    import papermill

    return dict(papermill.inspect_notebook(str(notebook)))


def venv_kernel_name() -> str:
    """A kernel that runs this very interpreter.

    The ``python3`` kernelspec is used when it resolves to this interpreter (argv ``python``, which jupyter_client
    replaces with ``sys.executable``, or this executable itself); otherwise a kernelspec pointing at
    ``sys.executable`` is installed into this environment (like ``python -m ipykernel install --sys-prefix``).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    try:
        spec = ksm.get_kernel_spec(KERNEL_NAME)
        first = spec.argv[0] if spec.argv else ""
        if first in ("python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}") \
                or Path(first) == Path(sys.executable):
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    kdir = Path(sys.prefix) / "share" / "jupyter" / "kernels" / VENV_KERNEL_NAME
    spec_json = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                 "display_name": f"Python ({VENV_KERNEL_NAME})", "language": "python"}
    kfile = kdir / "kernel.json"
    if not kfile.is_file() or json.loads(kfile.read_text()).get("argv") != spec_json["argv"]:
        kdir.mkdir(parents=True, exist_ok=True)
        kfile.write_text(json.dumps(spec_json, indent=1))
    return VENV_KERNEL_NAME


def _adapt_split(split, version: str):
    if isinstance(split, str):
        return equivalent_split(version, split)
    return split


def _given_dataset(root: Path, version: str, source: str) -> dict:
    """A dataroot given by the user; a folder made by ``trackssm_lib.synth`` (its ``synth.json``) is still
    reported as synthetic."""
    ds = {"dataroot": root, "version": version, "synthetic": False, "source": source}
    manifest = root / "synth.json"
    if manifest.is_file():
        try:
            info = json.loads(manifest.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("generator", "").startswith("trackssm_lib.synth"):
            ds.update(synthetic=True, scenes=info.get("n_scenes"), seed=info.get("seed"),
                      images=info.get("images"), generated=False)
    return ds


def resolve_dataset(prof: dict, dataroot: str | None, version: str | None) -> dict:
    """Which dataset the report uses: {dataroot, version, synthetic, source, ...}."""
    version = version or os.environ.get("NUSC_VERSION") or prof["version"]
    if dataroot:
        return _given_dataset(Path(dataroot).resolve(), version, "argument")
    if prof.get("dataroot"):
        return _given_dataset(_resolve(prof["dataroot"]), version, "profile")
    if os.environ.get("NUSC_ROOT"):
        return _given_dataset(Path(os.environ["NUSC_ROOT"]).resolve(), version, "NUSC_ROOT")
    syn = prof["synthetic"]
    folder = syn.get("folder") if version == prof["version"] else None  # the profile's folder is for its version
    folder = folder or f"data/synth-{version}-s{syn.get('seed') or 0}" + ("" if syn.get("images", True) else "-noimg")
    return {"dataroot": _resolve(folder), "version": version, "synthetic": True, "source": "synthetic",
            "scenes": syn.get("scenes"), "seed": int(syn.get("seed") or 0), "images": bool(syn.get("images", True)),
            "generated": True}


# ------------------------------------------------------------------------------------------ chapters
DEFAULT_PROFILE = "configs/report_demo.yaml"
EXPORT_CHAPTER, PHASE1_CHAPTER, PHASE2_CHAPTER = "02_interpolation", "03_phase1_decoder", "04_phase2_full"
# notebook parameters that hold paths: relative ones are relative to the project root, never to the kernel's folder
PATH_PARAMETERS = ("dataroot", "output_dir", "export_dir", "data", "config", "mot17_root", "training_dir",
                   "training_root", "phase1_checkpoint")
# the parameters of chapters 03 / 04 that are training config keys (``overrides`` holds any other)
TRAINING_PARAMETERS = ("pretrain_epochs", "pretrain_max_batches", "max_train_batches", "max_val_batches",
                       "phase1_checkpoint")


def project_path(path: str | os.PathLike | None) -> Path | None:
    """``path`` as an absolute path, a relative one taken from the project root (None stays None)."""
    return _resolve(path)


def chapter_defaults(name: str, nb_dir: Path | None = None) -> dict[str, Any]:
    """The values of a chapter's ``parameters`` cell (the defaults a JupyterLab user runs with); each must be a
    Python literal."""
    src = (nb_dir or PROJECT_ROOT / DEFAULTS["notebook_dir"]) / f"{name}.ipynb"
    return literal_defaults(src, notebook_parameters(src)) if src.is_file() else {}


def literal_defaults(src: Path, declared: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a ``parameters`` cell read by :func:`notebook_parameters`."""
    out = {}
    for key, info in declared.items():
        try:
            out[key] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"{src}: parameter {key!r} = {info['default']!r} is not a Python literal") from err
    return out


def chapter_parameters(name: str, profile: str | Path | None = None) -> dict[str, Any]:
    """A chapter's parameters as a report run with ``profile`` gives them: its defaults, then the profile's."""
    prof = load_profile(profile or DEFAULT_PROFILE)
    return {**chapter_defaults(name, _resolve(prof["notebook_dir"])), **prof["parameters"].get(name, {})}


def default_export_dir(out_dir: Path, dataroot: Path, version: str, interp: str = "3d", clip: str = "exact") -> Path:
    """Chapter 02's export of one dataset with one setting (``prepare`` refuses to mix settings in one folder)."""
    return Path(out_dir) / "export" / "-".join([Path(dataroot).name, version, str(interp), str(clip)])


@dataclass
class ChapterInputs:
    """What a chapter reads and where it writes (absolute paths). ``dataroot`` may not exist yet: a synthetic
    dataset is generated by :func:`dataset_ready` when a chapter needs it."""

    profile: Path
    dataroot: Path
    version: str
    synthetic: bool
    output_dir: Path
    export_dir: Path
    dataset: dict


def dataset_ready(inputs: ChapterInputs) -> Path:
    """The chapter's dataroot, the synthetic dataset generated first when it is missing (reused when complete)."""
    ds = inputs.dataset
    if ds.get("generated"):
        from trackssm_lib.synth import generate_dataset

        inputs.dataroot = Path(generate_dataset(inputs.dataroot, version=inputs.version, n_scenes=ds["scenes"],
                                                seed=ds["seed"], images=ds["images"], progress=False))
        ds["generated"] = False
    if not inputs.dataroot.is_dir():
        raise FileNotFoundError(f"nuScenes dataroot {inputs.dataroot} (from {ds['source']}) does not exist")
    return inputs.dataroot


def chapter_inputs(profile: str | Path | None = None, dataroot: str | Path | None = None, version: str | None = None,
                   output_dir: str | Path | None = None, export_dir: str | Path | None = None,
                   interp: str | None = None, clip: str | None = None, need_dataset: bool = True) -> ChapterInputs:
    """The dataset, output folder and export of a chapter whose parameters are left at None: those of a report run
    with ``profile`` (default: the demo of ``make report``), so that a chapter run alone in JupyterLab or papermill
    uses (and on first use makes) the very dataset, export and outputs the report uses. Relative paths are taken
    from the project root. ``interp`` / ``clip``: the export's settings (None: chapter 02's parameters in the
    profile). ``need_dataset``: generate the synthetic dataset now when it is missing (chapters 03-05 need it only
    to make a missing export, see :func:`ensure_prerequisites`)."""
    prof = load_profile(profile or DEFAULT_PROFILE)
    ds = resolve_dataset(prof, str(project_path(dataroot)) if dataroot else None, version)
    out_dir = project_path(output_dir) if output_dir else _resolve(prof["output_dir"])
    if export_dir:
        export = project_path(export_dir)
    else:
        p02 = {**chapter_defaults(EXPORT_CHAPTER, _resolve(prof["notebook_dir"])),
               **prof["parameters"].get(EXPORT_CHAPTER, {})}
        export = default_export_dir(out_dir, ds["dataroot"], ds["version"], interp or p02.get("interp", "3d"),
                                    clip or p02.get("clip", "exact"))
    inputs = ChapterInputs(profile=prof["_path"], dataroot=Path(ds["dataroot"]), version=ds["version"],
                           synthetic=bool(ds["synthetic"]), output_dir=out_dir, export_dir=export, dataset=ds)
    if need_dataset:
        dataset_ready(inputs)
    return inputs


def resolve_paths(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every path parameter (:data:`PATH_PARAMETERS`) made absolute from the project root."""
    return {k: str(project_path(v)) if k in PATH_PARAMETERS and isinstance(v, (str, Path)) and v else v
            for k, v in params.items()}


def chapter_training(params: Mapping[str, Any], inputs: ChapterInputs) -> tuple[Path, Path, list[str]]:
    """(config, data, ``--set`` overrides) of a training chapter's parameters (03 or 04), as the chapter trains."""
    p = resolve_paths(params)
    data = Path(p.get("data") or inputs.export_dir)
    training_dir = p.get("training_dir") or str(inputs.output_dir / "training")
    return Path(p["config"]), data, _training_overrides(p, training_dir)


def _training_overrides(p: Mapping[str, Any], training_dir: str | Path) -> list[str]:
    """The ``--set`` items of a training chapter's (path-resolved) parameters ``p``."""
    from trackssm_lib import model_eval

    extra = {k: p.get(k) for k in TRAINING_PARAMETERS if k in p}
    return model_eval.training_overrides(training_dir, epochs=p.get("epochs"),
                                         device=model_eval.resolve_device(p.get("device", "auto")),
                                         mot17_root=p.get("mot17_root"),
                                         extra={**extra, **(p.get("overrides") or {})})


def check_training_parameters(profile: Path, all_params: Mapping[str, Mapping[str, Any]]) -> None:
    """Check every training chapter's settings before any chapter runs: each key of its ``overrides`` must be a
    training config key (:data:`trackssm_lib.training.DEFAULTS`) and the whole (config file + overrides) must load
    with :func:`trackssm_lib.training.load_config`. ValueError naming the profile file, the chapter and the key.
    A training chapter is one whose parameters hold ``config`` and ``overrides``."""
    training = [(name, p) for name, p in all_params.items() if "config" in p and "overrides" in p]
    if not training:
        return
    from trackssm_lib.training import DEFAULTS as TRAINING_KEYS, ConfigError, load_config

    for name, params in training:
        where = f"report profile {profile}, chapter {name}"
        overrides = params.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            raise ValueError(f"{where}: 'overrides' must map training config keys to values, got {overrides!r}")
        for key in overrides:
            if key not in TRAINING_KEYS:
                raise ValueError(f"{where}: 'overrides' key {key!r} is not a training config key (known keys: "
                                 f"{', '.join(sorted(TRAINING_KEYS))})")
        p = resolve_paths(params)
        try:
            load_config(p["config"], _training_overrides(p, "training"))
        except (ConfigError, FileNotFoundError) as err:
            raise ValueError(f"{where}: {err}") from err


def make_export(params: Mapping[str, Any], inputs: ChapterInputs, nusc=None, progress: bool = False) -> dict:
    """Chapter 02's export (``prepare``, complete sequences kept) of its parameters ``split``, ``max_scenes`` (the
    split's first N scenes), ``cameras``, ``interp``, ``clip``, ``workers``; returns ``prepare``'s statistics."""
    from trackssm_lib.export import prepare
    from trackssm_lib.nuscenes_db import load_nuscenes
    from trackssm_lib.splits import split_scenes

    nusc = nusc if nusc is not None else load_nuscenes(inputs.dataroot, inputs.version)
    split = _adapt_split(params.get("split", "all"), inputs.version)
    scenes = split_scenes(nusc, split)[:params.get("max_scenes")]
    return prepare(inputs.dataroot, inputs.version, inputs.export_dir, split=split, scenes=scenes,
                   cameras=params.get("cameras"), interp=params.get("interp", "3d"), clip=params.get("clip", "exact"),
                   workers=int(params.get("workers") or 1), progress=progress, nusc=nusc)


def ensure_prerequisites(chapter: str, inputs: ChapterInputs, say=print) -> None:
    """Make what ``chapter`` needs from the earlier chapters when it is missing, with the parameters a report run
    with ``inputs.profile`` gives them: chapter 02's export (chapters 03-05), phase 1 (04, 05), phase 2 (05).
    What exists is used as it is."""
    from trackssm_lib import model_eval

    order = [EXPORT_CHAPTER, PHASE1_CHAPTER, PHASE2_CHAPTER, "05_evaluation"]
    if chapter not in order[1:]:
        return
    if not (inputs.export_dir / "seqmaps").is_dir():
        say(f"no export in {display_path(inputs.export_dir)}: making chapter 02's export first")
        dataset_ready(inputs)
        make_export(chapter_parameters(EXPORT_CHAPTER, inputs.profile), inputs, progress=True)
    for needed in order[1:order.index(chapter)]:
        config, data, overrides = chapter_training(chapter_parameters(needed, inputs.profile), inputs)
        cfg = model_eval.effective_config(config, data, overrides)
        if not model_eval.phase_paths(cfg)["best"].is_file():
            say(f"no {needed} weights in {display_path(model_eval.phase_paths(cfg)['root'])}: training them first "
                f"with chapter {needed[:2]}'s parameters")
            model_eval.train_or_reuse(config, data, overrides, log=say)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def publishable(notebook: Path, folders: Sequence[Path] = ()) -> None:
    """Make an executed chapter fit for the book, in place: papermill's injected parameters hidden like the chapter's
    own (viewable on demand), and no absolute path of this machine in any cell, output or the notebook's metadata
    (the book offers the notebook for download): paths inside the project
    are shown relative to its root, ``folders`` outside it (the dataroot, the output folder) as ``.../<name>``, the
    home folder as ``~``."""
    import nbformat

    pairs = [(str(PROJECT_ROOT) + os.sep, ""), (str(PROJECT_ROOT), ".")]
    for folder in sorted({Path(f).resolve() for f in folders}, key=lambda f: -len(str(f))):
        if not folder.is_relative_to(PROJECT_ROOT):
            pairs.insert(0, (str(folder), f".../{folder.name}"))
    pairs.append((str(Path.home()), "~"))

    def scrub(text: str) -> str:
        for old, new in pairs:
            text = text.replace(old, new)
        return text

    def scrub_any(value):
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, list):
            return [scrub_any(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub_any(v) for k, v in value.items()}
        return value

    nb = nbformat.read(str(notebook), as_version=4)
    nb.metadata = nbformat.from_dict(scrub_any(nb.metadata))  # papermill's input/output paths and parameters
    for cell in nb.cells:
        cell.source = scrub(cell.source)
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = scrub_any(out["text"])
            for mime, value in (out.get("data") or {}).items():
                if mime.startswith("text/"):
                    out["data"][mime] = scrub_any(value)
    nbformat.write(nb, str(notebook))


def _placeholder_chapter(path: Path, name: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}\n\nThis chapter was not executed in this report run "
                                              f"(run `python -m trackssm_lib report --notebooks {name}`).")]
    nbformat.write(nb, str(path))


def _write_run_info(path: Path, prof: dict, ds: dict, params: dict, timings: dict, out_dir: Path) -> None:
    kind = "**synthetic** dataset in the nuScenes schema (generated by `trackssm_lib.synth`, " \
        f"{ds.get('scenes') or 'all'} scenes, seed {ds.get('seed')}; not real sensor data)" if ds["synthetic"] \
        else "**real nuScenes** data"
    lines = [
        "## This run", "",
        f"- profile: `{display_path(prof['_path'])}` ({prof.get('title', '')})",
        f"- dataset: {kind}",
        f"- dataroot: `{display_path(ds['dataroot'])}` (from {ds['source']}), version `{ds['version']}`",
        f"- outputs (export, recorded figures): `{display_path(out_dir)}`",
        f"- built: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}", "",
        "| chapter | parameters | execution time |", "| --- | --- | --- |",
    ]
    for name, p in params.items():
        shown = ", ".join(f"{k}={v!r}" for k, v in p.items()
                          if k not in ("dataroot", "output_dir", "export_dir", "profile"))
        t = timings.get(name)
        lines.append(f"| {name} | {shown.replace('|', '/')} | {f'{t:.0f} s' if t is not None else 'not run'} |")
    write_text_atomic(path, "\n".join(lines) + "\n")


def findings_markdown(out_dir: Path) -> str:
    """The first page's findings: chapter 05's combined scores of this run (``05_evaluation.json``) and the shipped
    headline model's recorded whole-split scores (``zoo/index.json``); computed, never typed."""
    from trackssm_lib import zoo

    lines = ["## Findings of this run", ""]
    record = out_dir / "05_evaluation.json"
    if record.is_file():
        fig = load_figures(record)
        combined = fig.get("combined", {})
        dets = [d for d in ("noisy", "gt") if any(k.endswith(f"|{d}") for k in combined)]
        lines += [f"Tracking on `{fig.get('eval_split')}` ({fig.get('n_sequences')} sequences, keyframes, class "
                  f"average; chapter {{doc}}`chapters/05_evaluation`), the same detections for every tracker:", "",
                  "| tracker | " + " | ".join(f"{d} {m}" for d in dets for m in ("HOTA", "IDF1", "IDSW")) + " |",
                  "| --- |" + " ---: |" * (3 * len(dets))]
        trackers = list(dict.fromkeys(k.split("|")[0] for k in combined))
        for t in trackers:
            cells = []
            for d in dets:
                r = combined.get(f"{t}|{d}", {})
                ok = r.get("status") == "ok"
                cells += [f"{r['HOTA']:.1f}" if ok else "n/a", f"{r['IDF1']:.1f}" if ok else "n/a",
                          f"{int(r['IDSW']):,}" if ok else "n/a"]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
    else:
        lines.append("Chapter 05 did not run in this report run: no tracking results to show.")
    try:
        entry = zoo.headline_entry()
    except zoo.ZooError:
        entry = None
    if entry and "test" in entry["results"]:
        test = entry["results"]["test"]
        parts = [f"against {zoo.TRACKER_LABELS[b]} HOTA {c['hota_gain']:+.2f} and IDSW x{c['idsw_ratio']:.3f}"
                 for b in ("kalman", "kalman-ego") if (c := zoo.against(test, b)) and c["idsw_ratio"]]
        model = test["total"][zoo.MODEL_ROW]
        lines += ["", f"The shipped headline model `zoo:{entry['name']}` (recorded in `zoo/index.json`, "
                  f"{entry['train_minutes']:.0f} minutes of training on {entry['machine']}) on the whole synthetic "
                  f"test split ({test['sequences']} sequences, {', '.join(test['runs'])}): HOTA "
                  f"{model['HOTA']:.2f}, IDSW {model['IDSW']:,}; {'; '.join(parts)}. The zoo table: `zoo/README.md`."]
        lines += ["", "How far the Kalman filter is from perfect next-box predictions (the oracle, same association) "
                  "on the synthetic test split and on real nuScenes, as recorded with the headline model:", "",
                  "| data | detection runs | Kalman HOTA / IDSW | Kalman + ego HOTA / IDSW | headline model | "
                  "oracle HOTA / IDSW |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for label, result in entry["results"].items():
            if label == "val":
                continue
            cells = []
            for t in ("kalman", "kalman-ego", zoo.MODEL_ROW, "oracle"):
                r = result["total"].get(t)
                cells.append(f"{r['HOTA']:.2f} / {int(r['IDSW']):,}" if r else "n/a")
            lines.append(f"| {label} ({result['sequences']} sequences) | {', '.join(result['runs'])} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def display_path(path: Path | str) -> str:
    """A path as a page may show it: relative to the project root, else ``.../<name>`` (no machine's layout)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return f".../{path.name}"


def notebook_run_parameters(prof: dict, nb_dir: Path, ds: dict, out_dir: Path) -> dict:
    """Papermill parameters of each notebook of the profile: the common ones (dataroot, version, output_dir, profile,
    export_dir: :func:`chapter_inputs` with the same profile gives the same) where the notebook declares them, plus
    the profile's; a name the notebook does not declare in its
    ``parameters`` cell, or a bad training setting (:func:`check_training_parameters`), raises ValueError."""
    common = {"dataroot": str(ds["dataroot"]), "version": ds["version"], "output_dir": str(out_dir),
              "profile": str(prof["_path"])}
    p02 = {**chapter_defaults(EXPORT_CHAPTER, nb_dir), **prof["parameters"].get(EXPORT_CHAPTER, {})}
    export_dir = default_export_dir(out_dir, ds["dataroot"], ds["version"], p02.get("interp", "3d"),
                                    p02.get("clip", "exact"))
    all_params = {}
    for name in prof["notebooks"]:
        src = nb_dir / f"{name}.ipynb"
        declared = notebook_parameters(src) if src.is_file() else {}
        given = prof["parameters"].get(name, {})
        unknown = [k for k in given if k not in declared]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for notebook {name} in report profile "
                             f"{prof['_path']}; the notebook declares {sorted(declared)}")
        params = {**literal_defaults(src, declared), **{k: v for k, v in common.items() if k in declared}, **given}
        params = {k: _adapt_split(v, ds["version"]) if k.endswith("split") else v for k, v in params.items()}
        if "export_dir" in declared:  # chapter 02's export, read by the later chapters
            params["export_dir"] = str(export_dir)
        all_params[name] = params
    check_training_parameters(prof["_path"], all_params)  # a bad training setting fails before any chapter runs
    return all_params


def run_report(profile: str | Path, dataroot: str | None = None, version: str | None = None,
               notebooks: list[str] | None = None, out: str | Path | None = None, build: bool = True) -> Path:
    """Run the profile's notebooks and build the book; returns ``<book_dir>/_build/html/index.html``."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    t_start = time.perf_counter()
    prof = load_profile(profile)
    names = list(notebooks) if notebooks else prof["notebooks"]
    nb_dir, book_dir = _resolve(prof["notebook_dir"]), _resolve(prof["book_dir"])
    out_dir = Path(out).resolve() if out is not None else _resolve(prof["output_dir"])
    for name in names:
        if name not in prof["notebooks"]:
            raise ValueError(f"notebook {name!r} is not in report profile {prof['_path']} "
                             f"(its notebooks: {prof['notebooks']})")
        if not (nb_dir / f"{name}.ipynb").is_file():
            raise FileNotFoundError(f"notebook {nb_dir / (name + '.ipynb')} not found "
                                    f"(profile {prof['_path']} lists {prof['notebooks']})")
    ds = resolve_dataset(prof, dataroot, version)
    notebook_run_parameters(prof, nb_dir, ds, out_dir)  # bad parameters fail before any work
    if ds.get("generated"):
        from trackssm_lib.synth import generate_dataset

        _log(f"[report] synthetic {ds['version']} dataset in {ds['dataroot']} "
             f"({ds['scenes'] or 'all'} scenes, seed {ds['seed']}; reused when complete)")
        t0 = time.perf_counter()
        ds["dataroot"] = Path(generate_dataset(ds["dataroot"], version=ds["version"], n_scenes=ds["scenes"],
                                               seed=ds["seed"], images=ds["images"]))
        _log(f"[report] dataset ready in {time.perf_counter() - t0:.1f} s")
    if not Path(ds["dataroot"]).is_dir():
        raise FileNotFoundError(f"nuScenes dataroot {ds['dataroot']} (from {ds['source']}) does not exist")

    out_dir.mkdir(parents=True, exist_ok=True)
    chapters = book_dir / "chapters"
    chapters.mkdir(parents=True, exist_ok=True)
    kernel = venv_kernel_name()
    all_params = notebook_run_parameters(prof, nb_dir, ds, out_dir)
    timings = {}
    for i, name in enumerate(names, 1):
        src, dst = nb_dir / f"{name}.ipynb", chapters / f"{name}.ipynb"
        tmp = chapters / f".{name}.tmp.ipynb"
        _log(f"[report] notebook {i}/{len(names)}: {name} ...")
        t0 = time.perf_counter()
        try:
            papermill.execute_notebook(str(src), str(tmp), parameters=all_params[name], kernel_name=kernel,
                                       progress_bar={"desc": f"[report] {name}", "unit": "cell",
                                                     "file": sys.stderr},  # the chapter's progress, cell by cell
                                       cwd=str(PROJECT_ROOT),
                                       execution_timeout=prof["execution_timeout_s"])
        except PapermillExecutionError as err:
            failed = chapters / f"{name}.failed.ipynb"
            if tmp.exists():
                os.replace(tmp, failed)
            raise ReportError(f"notebook {name} failed in cell {err.exec_count}: {err.ename}: {err.evalue} "
                              f"(executed copy with the traceback: {failed})") from err
        publishable(tmp, [Path(ds["dataroot"]), out_dir, Path(prof["_path"]), chapters.parent, src.parent])
        os.replace(tmp, dst)
        (chapters / f"{name}.failed.ipynb").unlink(missing_ok=True)
        timings[name] = time.perf_counter() - t0
        _log(f"[report] notebook {i}/{len(names)}: {name} done in {timings[name]:.1f} s")
    for name in prof["notebooks"]:
        if not (chapters / f"{name}.ipynb").exists():
            _placeholder_chapter(chapters / f"{name}.ipynb", name)
    _write_run_info(chapters / "run_info.md", prof, ds, all_params, timings, out_dir)
    write_text_atomic(chapters / "findings.md", findings_markdown(out_dir))
    write_json_atomic(out_dir / "report_run.json", {
        "profile": str(prof["_path"]), "dataroot": str(ds["dataroot"]), "version": ds["version"],
        "synthetic": ds["synthetic"], "notebooks": names, "parameters": all_params,
        "notebook_seconds": {k: round(v, 1) for k, v in timings.items()}}, indent=2, sort_keys=True)

    index = book_dir / "_build" / "html" / "index.html"
    if build:
        _log(f"[report] building the book in {book_dir} ...")
        t0 = time.perf_counter()
        build_book(book_dir)
        _log(f"[report] book built in {time.perf_counter() - t0:.1f} s")
    _log(f"[report] total {time.perf_counter() - t_start:.1f} s")
    return index


def build_book(book_dir: str | Path) -> Path:
    """``jupyter-book build book_dir`` with this interpreter; raises ReportError with the log tail on failure."""
    book_dir = Path(book_dir)
    cmd = [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
           "build", str(book_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(book_dir.parent))
    log = book_dir / "_build" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + "\n" + proc.stderr)
    index = book_dir / "_build" / "html" / "index.html"
    if proc.returncode != 0 or not index.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise ReportError(f"jupyter-book build {book_dir} failed (exit {proc.returncode}; full log {log}):\n{tail}")
    return index
