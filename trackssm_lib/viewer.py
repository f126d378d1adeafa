"""Viewer for a prepared (exported) sequence folder: boxes and track ids over the camera frames.

Reads only the export layout (``OUT/<split>/<scene>_<CAMERA>/`` with ``gt/gt.txt``, ``gt/ids.csv``,
``frames.csv`` and ``seqinfo.ini``). Images come from the dataroot (``seqinfo.ini`` ``imDir`` unless given) plus the
``filename`` column of ``frames.csv``; frames without an image (sweeps of a dataset that ships keyframe images
only, virtual ``linear2d`` frames) are drawn on a grey 1600x900 canvas with a note. Keyframe boxes are solid,
interpolated boxes dashed.

:func:`draw_frame` is a plain matplotlib function (static figures in the book); :class:`SequenceViewer` wraps it in
ipywidgets, rendering into an ``ipywidgets.Output`` so it works with the inline backend and no JS extension.
"""
from __future__ import annotations

import base64
import configparser
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from trackssm_lib.constants import CAMERAS, CLASS_NAMES
from trackssm_lib.plots import class_legend, draw_boxes, draw_canvas, load_image


@dataclass
class ExportSequence:
    """One exported sequence read back from disk."""

    path: Path
    name: str
    dataroot: Path | None
    frame: np.ndarray          # (F,) 1-based
    is_key_frame: np.ndarray   # (F,) bool
    timestamps: np.ndarray     # (F,) int64 us
    filenames: np.ndarray      # (F,) relative to the dataroot ('' when none)
    gt: np.ndarray             # (N, 10) gt.txt rows

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def scene(self) -> str:
        return self.name.split("_CAM_")[0]

    @property
    def camera(self) -> str:
        return "CAM_" + self.name.split("_CAM_", 1)[1] if "_CAM_" in self.name else ""

    def rows_at(self, frame: int, classes=None) -> np.ndarray:
        rows = self.gt[self.gt[:, 0].astype(np.int64) == int(frame)]
        if classes is not None:
            wanted = [CLASS_NAMES.index(c) for c in classes]
            rows = rows[np.isin(rows[:, 7].astype(np.int64), wanted)]
        return rows

    def image_path(self, frame: int, dataroot: str | Path | None = None) -> Path | None:
        root = Path(dataroot) if dataroot is not None else self.dataroot
        name = self.filenames[int(frame) - 1]
        return root / name if root is not None and name else None


_CACHE: dict = {}


def load_sequence(seq_dir: str | Path) -> ExportSequence:
    """Read an exported sequence folder (cached until its files change)."""
    seq_dir = Path(seq_dir)
    gt_path, frames_path, info_path = seq_dir / "gt" / "gt.txt", seq_dir / "frames.csv", seq_dir / "seqinfo.ini"
    for p in (gt_path, frames_path, info_path):
        if not p.is_file():
            raise FileNotFoundError(f"{seq_dir} is not an exported sequence: {p.name} is missing")
    key = (str(seq_dir.resolve()), gt_path.stat().st_mtime_ns, frames_path.stat().st_mtime_ns)
    if key in _CACHE:
        return _CACHE[key]
    info = configparser.ConfigParser()
    info.read(info_path)
    section = info["Sequence"] if info.has_section("Sequence") else {}
    with open(frames_path, newline="") as f:
        rows = list(csv.DictReader(f))
    text = gt_path.read_text()
    gt = np.loadtxt(text.splitlines(), delimiter=",", ndmin=2).reshape(-1, 10) if text.strip() else np.zeros((0, 10))
    seq = ExportSequence(
        path=seq_dir, name=section.get("name", seq_dir.name),
        dataroot=Path(section["imDir"]) if section.get("imDir") else None,
        frame=np.array([int(r["frame"]) for r in rows], dtype=np.int64),
        is_key_frame=np.array([r["is_key_frame"].strip() in ("1", "True", "true") for r in rows], dtype=bool),
        timestamps=np.array([int(r["timestamp_us"]) for r in rows], dtype=np.int64),
        filenames=np.array([r["filename"] or "" for r in rows], dtype=object),
        gt=gt,
    )
    _CACHE.clear()  # keep one generation of files only; sequences are small
    _CACHE[key] = seq
    return seq


def find_sequences(export_dir: str | Path, split: str | None = None) -> list[Path]:
    """Exported sequence folders under ``export_dir`` (one split, or every split), sorted by split and name."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise FileNotFoundError(f"no export folder {export_dir}")
    pattern = f"{split}/*/seqinfo.ini" if split else "*/*/seqinfo.ini"
    seqs = sorted(p.parent for p in export_dir.glob(pattern) if not p.parent.name.startswith("."))
    if not seqs:
        where = f"split {split!r} of " if split else ""
        raise FileNotFoundError(f"no exported sequences in {where}{export_dir}")
    return seqs


def _overlay_rows(rows: np.ndarray, classes) -> np.ndarray:
    if classes is None or len(rows) == 0:
        return rows
    keep = np.isin(rows[:, 5].astype(int), [CLASS_NAMES.index(c) for c in classes])
    return rows[keep]


def tracker_rows_at(results_dir: str | Path, seq_name: str, frame: int) -> np.ndarray:
    """Tracker output of one frame as (N, 7) x1, y1, x2, y2, track_id, score, class_id (empty if no file)."""
    path = Path(results_dir) / f"{seq_name}.txt"
    if not path.is_file() or path.stat().st_size == 0:
        return np.zeros((0, 7))
    res = np.loadtxt(path, delimiter=",", ndmin=2)
    res = res[res[:, 0] == int(frame)]
    return np.column_stack([res[:, 2], res[:, 3], res[:, 2] + res[:, 4], res[:, 3] + res[:, 5], res[:, 1],
                            res[:, 6], res[:, 7]])


def draw_frame(ax, export_seq_dir: str | Path, frame: int, classes=None, dataroot: str | Path | None = None,
               show_ids: bool = True, legend: bool = True, results_dir: str | Path | None = None,
               detections: dict[int, np.ndarray] | None = None, show_gt: bool = True) -> dict:
    """Draw one frame of an exported sequence: the image (or a grey canvas), its ground-truth boxes coloured by
    class with track ids (keyframe boxes solid, interpolated boxes dashed); optionally the detections (thin grey)
    and a tracker's output from ``results_dir/<sequence>.txt`` (dotted, labelled ``t<id>``). Returns counts."""
    seq = load_sequence(export_seq_dir)
    if not 1 <= int(frame) <= len(seq):
        raise ValueError(f"frame {frame} is outside 1..{len(seq)} of {seq.name}")
    key = bool(seq.is_key_frame[int(frame) - 1])
    image = load_image(seq.image_path(frame, dataroot))
    note = "no image for this keyframe" if key else "no image for this sweep"
    has_image = draw_canvas(ax, image, note)
    rows = seq.rows_at(frame, classes) if show_gt else np.zeros((0, 10))
    boxes = np.column_stack([rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]])
    names = [CLASS_NAMES[int(c)] for c in rows[:, 7]]
    labels = [int(i) for i in rows[:, 1]] if show_ids else None
    draw_boxes(ax, boxes, names, labels, linestyle="-" if key else "--")
    dets = _overlay_rows(np.asarray(detections.get(int(frame), np.zeros((0, 6)))), classes) \
        if detections is not None else np.zeros((0, 6))
    draw_boxes(ax, dets[:, :4], [""] * len(dets), None, linewidth=0.8, color="0.85")
    tracks = np.zeros((0, 7))
    if results_dir is not None:
        tracks = tracker_rows_at(results_dir, seq.name, frame)
        if classes is not None and len(tracks):
            tracks = tracks[np.isin(tracks[:, 6].astype(int), [CLASS_NAMES.index(c) for c in classes])]
        draw_boxes(ax, tracks[:, :4], [CLASS_NAMES[int(c)] for c in tracks[:, 6]],
                   [f"t{int(i)}" for i in tracks[:, 4]] if show_ids else None, linestyle=":", linewidth=2.0)
    if legend and len(rows):
        class_legend(ax, sorted(set(names), key=CLASS_NAMES.index))
    kind = "keyframe (annotated boxes, solid)" if key else "sweep (interpolated boxes, dashed)"
    extra = (f", {len(dets)} detections" if detections is not None else "") + \
        (f", {len(tracks)} tracker boxes (dotted)" if results_dir is not None else "")
    ax.set_title(f"{seq.name}  frame {int(frame)}/{len(seq)}: {kind}, {len(rows)} boxes{extra}", fontsize=9)
    return {"boxes": int(len(rows)), "detections": int(len(dets)), "tracker_boxes": int(len(tracks)),
            "has_image": has_image, "is_key_frame": key, "name": seq.name}


class SequenceViewer:
    """Interactive viewer: scene and camera selectors, frame slider, class filter; matplotlib into an Output."""

    def __init__(self, export_dir: str | Path, split: str | None = None, dataroot: str | Path | None = None,
                 figsize: tuple[float, float] = (10.0, 5.8), dpi: int = 80, results_dir: str | Path | None = None,
                 detections: str | Path | None = None, seed: int = 0):
        """``results_dir``: a tracker's ``<sequence>.txt`` files shown beside the ground truth; ``detections``:
        ``'gt'``, ``'noisy'`` or a folder of detection files (``trackssm_lib.detections``), shown in grey."""
        import ipywidgets as widgets

        self.export_dir = Path(export_dir)
        self.dataroot = dataroot
        self.results_dir = results_dir
        self.detection_source = detections
        self.seed = seed
        self._detections: dict[str, dict] = {}
        self.figsize = figsize
        self.dpi = dpi
        self.png = b""
        self.sequences = {p.name: p for p in find_sequences(self.export_dir, split)}
        self.by_scene: dict[str, list[str]] = {}
        for name in self.sequences:
            scene, camera = name.split("_CAM_")[0], "CAM_" + name.split("_CAM_", 1)[1]
            self.by_scene.setdefault(scene, []).append(camera)
        for scene, cams in self.by_scene.items():
            cams.sort(key=lambda c: CAMERAS.index(c) if c in CAMERAS else len(CAMERAS))
        self.last_info: dict = {}
        self.renders = 0

        scenes = sorted(self.by_scene)
        self.scene = widgets.Dropdown(options=scenes, value=scenes[0], description="scene")
        self.camera = widgets.Dropdown(options=self.by_scene[scenes[0]], description="camera")
        self.frame = widgets.IntSlider(value=1, min=1, max=1, description="frame", continuous_update=False,
                                       layout=widgets.Layout(width="60%"))
        self.key_only = widgets.Checkbox(value=False, description="keyframes only")
        self.classes = widgets.SelectMultiple(options=list(CLASS_NAMES), value=list(CLASS_NAMES),
                                              description="classes", rows=len(CLASS_NAMES))
        self.show_gt = widgets.Checkbox(value=True, description="ground truth")
        self.show_dets = widgets.Checkbox(value=detections is not None, description="detections",
                                          disabled=detections is None)
        self.show_tracks = widgets.Checkbox(value=results_dir is not None, description="tracker",
                                            disabled=results_dir is None)
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.widget = widgets.VBox([
            widgets.HBox([self.scene, self.camera]),
            widgets.HBox([self.frame, self.key_only]),
            widgets.HBox([self.show_gt, self.show_dets, self.show_tracks]),
            widgets.HBox([self.classes, self.status]),
            self.output,
        ])
        self._sync_frames()
        self.scene.observe(self._on_scene, names="value")
        self.camera.observe(self._on_camera, names="value")
        self.frame.observe(self._on_frame, names="value")
        self.key_only.observe(lambda change: self._snap_and_render(), names="value")
        self.classes.observe(lambda change: self.render(), names="value")
        for box in (self.show_gt, self.show_dets, self.show_tracks):
            box.observe(lambda change: self.render(), names="value")
        self.render()

    # -- state
    @property
    def sequence_dir(self) -> Path:
        return self.sequences[f"{self.scene.value}_{self.camera.value}"]

    def sequence_detections(self) -> dict | None:
        """The detections of the selected sequence (loaded once per sequence)."""
        if self.detection_source is None:
            return None
        name = self.sequence_dir.name
        if name not in self._detections:
            from trackssm_lib.detections import load_detections

            self._detections[name] = load_detections(self.detection_source, self.sequence_dir, seed=self.seed)
        return self._detections[name]

    def _sync_frames(self) -> None:
        seq = load_sequence(self.sequence_dir)
        with self.frame.hold_trait_notifications():
            self.frame.max = max(1, len(seq))
            self.frame.value = min(max(1, self.frame.value), self.frame.max)

    def _on_scene(self, change) -> None:
        cams = self.by_scene[change["new"]]
        current = self.camera.value
        with self.camera.hold_trait_notifications():
            self.camera.options = cams
            self.camera.value = current if current in cams else cams[0]
        self._sync_frames()
        self.render()

    def _on_camera(self, change) -> None:
        self._sync_frames()
        self.render()

    def _on_frame(self, change) -> None:
        if self.key_only.value:
            seq = load_sequence(self.sequence_dir)
            keys = seq.frame[seq.is_key_frame]
            if keys.size and change["new"] not in keys:
                ahead = keys[keys >= change["new"]] if change["new"] > change["old"] else keys[keys <= change["new"]]
                target = (ahead[0] if change["new"] > change["old"] else ahead[-1]) if ahead.size else \
                    keys[np.argmin(np.abs(keys - change["new"]))]
                self.frame.value = int(target)
                return  # that change renders
        self.render()

    def _snap_and_render(self) -> None:
        if self.key_only.value:
            seq = load_sequence(self.sequence_dir)
            keys = seq.frame[seq.is_key_frame]
            if keys.size and self.frame.value not in keys:
                self.frame.value = int(keys[np.argmin(np.abs(keys - self.frame.value))])
                return  # the slider change renders
        self.render()

    # -- drawing
    def render(self) -> dict:
        """Draw the selected frame into the Output widget (its ``outputs`` are set directly, as a PNG: no output
        capture through the kernel, so it behaves the same live, under papermill and outside IPython)."""
        fig, ax = plt.subplots(figsize=self.figsize)
        try:
            info = draw_frame(ax, self.sequence_dir, self.frame.value, classes=list(self.classes.value),
                              dataroot=self.dataroot, show_gt=self.show_gt.value,
                              results_dir=self.results_dir if self.show_tracks.value else None,
                              detections=self.sequence_detections() if self.show_dets.value else None)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=self.dpi)
        finally:
            plt.close(fig)
        self.png = buf.getvalue()
        self.output.outputs = ({
            "output_type": "display_data",
            "data": {"image/png": base64.b64encode(self.png).decode("ascii"),
                     "text/plain": f"<{info['name']} frame {self.frame.value}>"},
            "metadata": {},
        },)
        self.last_info = info
        self.renders += 1
        self.status.value = (f"<b>{info['name']}</b><br>{info['boxes']} boxes<br>"
                             f"{'keyframe' if info['is_key_frame'] else 'sweep'}"
                             f"{'' if info['has_image'] else '<br>(no image)'}")
        return info

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def view_sequences(export_dir: str | Path, split: str | None = None, dataroot: str | Path | None = None,
                   **kwargs):
    """The viewer's widget (an ``ipywidgets.VBox``) for the sequences of ``export_dir`` / ``split``; keyword
    arguments (``results_dir``, ``detections``, ...) go to :class:`SequenceViewer`."""
    return SequenceViewer(export_dir, split, dataroot, **kwargs).widget


def example_frames(export_seq_dir: str | Path, n_sweeps: int = 2) -> list[int]:
    """Frames worth a static look: a keyframe with boxes, the next ``n_sweeps`` sweeps and the next keyframe."""
    seq = load_sequence(export_seq_dir)
    counts = np.bincount(seq.gt[:, 0].astype(np.int64), minlength=len(seq) + 1)[1:] if len(seq.gt) else \
        np.zeros(len(seq), dtype=np.int64)
    keys = seq.frame[seq.is_key_frame]
    if keys.size == 0:
        return [int(seq.frame[0])] if len(seq) else []
    busy = keys[:-1][np.argmax(counts[keys[:-1] - 1])] if keys.size > 1 else keys[0]
    nxt = keys[keys > busy]
    end = int(nxt[0]) if nxt.size else int(seq.frame[-1])
    sweeps = [f for f in range(int(busy) + 1, end) if not seq.is_key_frame[f - 1]][:n_sweeps]
    return sorted({int(busy), *sweeps, end})


def frames_figure(export_seq_dir: str | Path, frames, classes=None, dataroot: str | Path | None = None,
                  ncols: int = 2):
    """Static grid of :func:`draw_frame` panels for the given frames; returns the Figure."""
    frames = list(frames)
    ncols = max(1, min(ncols, len(frames)))
    nrows = max(1, int(np.ceil(len(frames) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 3.9 * nrows), squeeze=False)
    for ax, frame in zip(axes.ravel(), frames):
        draw_frame(ax, export_seq_dir, frame, classes=classes, dataroot=dataroot, legend=False)
        ax.title.set_fontsize(8)
    for ax in axes.ravel()[len(frames):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
