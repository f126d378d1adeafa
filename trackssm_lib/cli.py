"""Command line: ``python -m trackssm_lib {synth,prepare,report,train,track,evaluate,zoo} ...``."""
from __future__ import annotations

import argparse
import json
import sys

from trackssm_lib.constants import CAMERAS
from trackssm_lib.interpolation import INTERP_MODES
from trackssm_lib.nuscenes_db import DataError
from trackssm_lib.projection import CLIP_MODES
from trackssm_lib.report import ReportError


def _synth(args: argparse.Namespace) -> int:
    from trackssm_lib.synth import generate_dataset

    path = generate_dataset(args.out, version=args.version, n_scenes=args.scenes, seed=args.seed,
                            images=not args.no_images, progress=not args.quiet)
    print(f"synthetic {args.version} dataset in {path}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from trackssm_lib.export import prepare

    stats = prepare(args.dataroot, args.version, args.out, split=args.split, scenes=args.scenes,
                    cameras=args.cameras, interp=args.interp, clip=args.clip, workers=args.workers,
                    overwrite=args.overwrite, progress=not args.quiet, max_scenes=args.max_scenes)
    timing = stats.pop("_timing")
    print(json.dumps({k: stats[k] for k in ("splits", "sequences", "frames", "boxes", "keyframe_share")}))
    print(f"tables loaded in {timing['load_tables_s']:.1f} s, checked in {timing['check_tables_s']:.1f} s; "
          f"export {timing['export_s']:.1f} s "
          f"({timing['written']} written, {timing['skipped']} already complete)", file=sys.stderr)
    rebuilt = {"repaired": "rebuilt: files missing or damaged", "changed": "rebuilt: inputs changed",
               "carried": "carried over unchanged from the replaced export",
               "dropped": "outside this selection and changed: left out",
               "adopted": "recorded (made before fingerprints)"}
    for key, what in rebuilt.items():
        if timing.get(key):
            print(f"  {timing[key]} sequence(s) {what}", file=sys.stderr)
    for what, count in stats.get("input_warnings", {}).items():
        print(f"warning: {count} x {what} (counted in stats.json)", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from trackssm_lib.report import run_report

    index = run_report(args.profile, dataroot=args.dataroot, version=args.version, notebooks=args.notebooks,
                       out=args.out)
    print(f"report: {index}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from trackssm_lib.training import train_command  # imports torch: only when training

    return train_command(args)


def _train_interrupted(args: argparse.Namespace) -> str:
    from trackssm_lib.training import interrupted_message

    return interrupted_message(args)


def _interrupted(args: argparse.Namespace) -> str:
    """The Ctrl-C message of the command ``args`` runs (its ``on_interrupt``, else the export's)."""
    on_interrupt = getattr(args, "on_interrupt", None)
    if on_interrupt is not None:
        return on_interrupt(args)
    return "interrupted: complete sequences are kept, rerun to resume"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trackssm_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a synthetic dataset in the nuScenes schema")
    p.add_argument("--out", required=True, help="dataroot to write")
    p.add_argument("--version", default="v1.0-mini", choices=["v1.0-mini", "v1.0-trainval"])
    p.add_argument("--scenes", type=int, default=None, help="number of scenes (default: all official names)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-images", action="store_true", help="skip keyframe JPEGs (scale runs)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_synth)

    p = sub.add_parser("prepare", help="export 12 Hz MOT sequences per scene and camera")
    p.add_argument("--dataroot", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="all", help="mini_train|mini_val (v1.0-mini), train|val|test (trainval), all")
    p.add_argument("--scenes", nargs="+", default=None, help="scene names (default: every scene of the split)")
    p.add_argument("--max-scenes", type=int, default=None,
                   help="only the first N scenes of the split (scene-table order), e.g. a quick subset")
    p.add_argument("--cameras", nargs="+", default=None, help=f"default: all of {' '.join(CAMERAS)}")
    p.add_argument("--interp", default="3d", choices=INTERP_MODES)
    p.add_argument("--clip", default="exact", choices=CLIP_MODES)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an export made with other settings or from changed tables (built beside it, "
                        "keeping unchanged sequences, swapped in when complete); with the same settings, rewrite "
                        "the selected sequences")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("report", help="run the notebooks with papermill and build the Jupyter Book")
    p.add_argument("--profile", default="configs/report_demo.yaml")
    p.add_argument("--dataroot", default=None, help="real nuScenes dataroot (default: $NUSC_ROOT or synthetic)")
    p.add_argument("--version", default=None, help="nuScenes version (default: $NUSC_VERSION or the profile's)")
    p.add_argument("--notebooks", nargs="+", default=None, help="only these notebooks (names without .ipynb)")
    p.add_argument("--out", default=None,
                   help="where the export and recorded figures go (default: the profile's output_dir); executed "
                        "notebooks always go to the book's chapters/")
    p.set_defaults(func=_report)

    p = sub.add_parser("train", help="fine-tune TrackSSM on prepared sequences (phase 1 or 2; torchrun: DDP)")
    p.add_argument("--config", required=True, help="YAML config (configs/nuscenes_phase1.yaml, ..._phase2.yaml)")
    p.add_argument("--data", default=None, help="prepared export folder (overrides the config's 'data')")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config keys (values parsed as YAML; every key and what it accepts: "
                        "trackssm_lib/training.py, DEFAULTS); repeatable")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the run from the phase's *_last.pth (only epochs, patience, min_delta, "
                            "stop_after_epoch and runtime keys such as device may change)")
    start.add_argument("--overwrite", action="store_true",
                       help="start a new run even where output_dir holds an earlier run of the phase, replacing its "
                            "checkpoints (without it, and without --resume, such a run is refused)")
    p.set_defaults(func=_train, on_interrupt=_train_interrupted)

    from trackssm_lib.evaluation import add_evaluate_parser
    from trackssm_lib.tracking import add_track_parser

    from trackssm_lib.zoo import add_zoo_parser

    add_track_parser(sub)
    add_evaluate_parser(sub)
    add_zoo_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ValueError, FileNotFoundError, FileExistsError, PermissionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ReportError as err:  # a failed notebook or book build: the message names it
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        return 130
