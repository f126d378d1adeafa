"""Viewer for a prepared (exported) sequence folder: boxes and track ids over the camera frames.

Reads only the export layout (``OUT/<split>/<scene>_<CAMERA>/`` with ``gt/gt.txt``, ``gt/ids.csv``,
``frames.csv`` and ``seqinfo.ini``). Images come from the dataroot (``seqinfo.ini`` ``imDir`` unless given) plus the
``filename`` column of ``frames.csv``; frames without an image (sweeps of a dataset that ships keyframe images
only, virtual ``linear2d`` frames) are drawn on a grey 1600x900 canvas with a note. Keyframe boxes are solid,
interpolated boxes dashed.

:func:`draw_frame` is a plain matplotlib function (static figures in the book); :class:`SequenceViewer` wraps it in
ipywidgets, rendering into an ``ipywidgets.Output`` so it works with the inline backend and no JS extension.
:func:`cameras_overview_figure` draws one timestamp of a scene in all six cameras (the viewer's "all 6 cameras"
toggle shows the same for its current frame).
"""
from __future__ import annotations

import base64
import configparser
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from trackssm_lib.constants import CAMERA_LAYOUT, CAMERAS, CLASS_NAMES
from trackssm_lib.plots import CLASS_COLORS, class_legend, draw_boxes, draw_canvas, load_image

OVERVIEW_CAMERAS: tuple[str, ...] = tuple(c for row in CAMERA_LAYOUT for c in row)  # the 2 x 3 grid, row by row


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
        dataroot=(seq_dir / section["imDir"]).resolve() if section.get("imDir") else None,  # relative: to the folder
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


def nearest_frame(seq: ExportSequence, timestamp: int, keyframes: bool = False) -> int:
    """The 1-based frame of ``seq`` nearest in time to ``timestamp`` (us); with ``keyframes`` the nearest keyframe
    (any frame when the sequence has no keyframe). ValueError for a sequence without frames."""
    pool = seq.frame[seq.is_key_frame] if keyframes and seq.is_key_frame.any() else seq.frame
    if pool.size == 0:
        raise ValueError(f"{seq.name} has no frames")
    return int(pool[np.argmin(np.abs(seq.timestamps[pool - 1] - int(timestamp)))])


def scene_sequences(export_dir: str | Path, scene: str, split: str | None = None) -> dict[str, Path]:
    """The exported sequence folders of ``scene`` by camera, ``{camera: folder}`` (FileNotFoundError if none)."""
    prefix = f"{scene}_CAM_"
    seqs = {"CAM_" + p.name[len(prefix):]: p for p in find_sequences(export_dir, split) if p.name.startswith(prefix)}
    if not seqs:
        raise FileNotFoundError(f"no exported sequences of scene {scene!r} in {export_dir}"
                                f"{f' (split {split})' if split else ''}")
    return seqs


def keyframe_timestamp(seqs: dict[str, Path], keyframe: int) -> int:
    """The timestamp (us) of keyframe number ``keyframe`` (0-based, negative from the end) of the scene, taken from
    its first camera in nuScenes order (CAM_FRONT when exported). IndexError outside the keyframes."""
    ref = min(seqs, key=lambda c: CAMERAS.index(c) if c in CAMERAS else len(CAMERAS))
    seq = load_sequence(seqs[ref])
    keys = seq.frame[seq.is_key_frame]
    if not -len(keys) <= int(keyframe) < len(keys):
        raise IndexError(f"keyframe {keyframe} is outside the {len(keys)} keyframes of {seq.name}")
    return int(seq.timestamps[keys[int(keyframe)] - 1])


def draw_cameras(axes, seqs: dict[str, Path], timestamp: int, keyframes: bool = True, classes=None,
                 dataroot: str | Path | None = None, show_gt: bool = True, results_dir: str | Path | None = None,
                 detections: Callable[[Path], dict[int, np.ndarray]] | None = None,
                 show_ids: bool = True) -> dict[str, dict]:
    """Draw into six axes, in :data:`OVERVIEW_CAMERAS` order, each camera's frame nearest to ``timestamp`` (us;
    the nearest keyframe with ``keyframes``) through :func:`draw_frame` (ground truth, detections, tracker boxes);
    each axis is titled by its camera, frame and time offset. ``detections``: a sequence folder's detections
    (``{frame: (N, 6)}``) or None. A camera missing from ``seqs`` gets a grey panel. Returns ``{camera:
    draw_frame's counts + 'frame'}`` for the cameras drawn."""
    out: dict[str, dict] = {}
    for ax, camera in zip(np.ravel(axes), OVERVIEW_CAMERAS):
        if camera not in seqs:
            draw_canvas(ax, None, "camera not exported")
            ax.set_title(f"{camera} (not exported)", fontsize=8)
            continue
        seq = load_sequence(seqs[camera])
        frame = nearest_frame(seq, timestamp, keyframes)
        info = draw_frame(ax, seqs[camera], frame, classes=classes, dataroot=dataroot, show_ids=show_ids,
                          legend=False, results_dir=results_dir, show_gt=show_gt,
                          detections=detections(seqs[camera]) if detections is not None else None)
        offset_ms = (int(seq.timestamps[frame - 1]) - int(timestamp)) / 1000.0
        ax.set_title(f"{camera}  frame {frame}/{len(seq)} ({'keyframe' if info['is_key_frame'] else 'sweep'}, "
                     f"{offset_ms:+.0f} ms), {info['boxes']} boxes", fontsize=8)
        out[camera] = {**info, "frame": frame}
    return out


def _overview(seqs: dict[str, Path], timestamp: int, title: str, width: float = 16.0, classes=None,
              **draw_kwargs) -> tuple[Figure, dict[str, dict]]:
    """The 2 x 3 figure of :func:`draw_cameras` with a title and a class legend below the panels."""
    fig, axes = plt.subplots(2, 3, figsize=(width, 2 * width / 3 * 9 / 16 + 1.0))
    info = draw_cameras(axes, seqs, timestamp, classes=classes, **draw_kwargs)
    shown = list(classes) if classes is not None else list(CLASS_NAMES)
    fig.legend(handles=[Rectangle((0, 0), 1, 1, fill=False, edgecolor=CLASS_COLORS[c], label=c) for c in shown],
               loc="lower center", ncol=max(1, len(shown)), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig, info


def cameras_overview_figure(export_dir: str | Path, scene: str, keyframe: int = 0, timestamp: int | None = None,
                            split: str | None = None, classes=None, dataroot: str | Path | None = None,
                            results_dir: str | Path | None = None, detections: str | Path | None = None,
                            seed: int = 0, show_gt: bool = True, keyframes: bool = True,
                            width: float = 16.0) -> Figure:
    """One timestamp of ``scene`` in all six cameras (2 x 3 grid: front left, front, front right / back left,
    back, back right), each camera's frame nearest to it (its nearest keyframe with ``keyframes``) with its ground
    truth, optionally ``detections`` (``'gt'``, ``'noisy'`` or a folder) and a tracker's ``results_dir``.

    The timestamp: ``timestamp`` (us) when given, else that of keyframe number ``keyframe`` (0-based) of the scene's
    CAM_FRONT. Returns the Figure (axes in grid order, each titled by its camera)."""
    seqs = scene_sequences(export_dir, scene, split)
    t = int(timestamp) if timestamp is not None else keyframe_timestamp(seqs, keyframe)
    from trackssm_lib.detections import load_detections

    def detections_of(seq_dir: Path) -> dict[int, np.ndarray]:
        return load_detections(detections, seq_dir, seed=seed)

    which = f"keyframe {keyframe}" if timestamp is None else "timestamp"
    title = f"{scene}: {which}, t = {t} us, each camera's nearest {'keyframe' if keyframes else 'frame'}"
    fig, _ = _overview(seqs, t, title, width=width, classes=classes, keyframes=keyframes, dataroot=dataroot,
                       show_gt=show_gt, results_dir=results_dir,
                       detections=detections_of if detections is not None else None)
    return fig


class SequenceViewer:
    """Interactive viewer: scene and camera selectors, frame slider, class filter; matplotlib into an Output.

    With "keyframes only" ticked, the shown frame is always a keyframe: the slider steps from keyframe to keyframe,
    and a camera change goes to the new camera's keyframe nearest in time, a scene change to the keyframe nearest
    the frame position (without it, a camera change goes to the frame nearest in time). "all 6 cameras" shows
    :func:`draw_cameras` at the current frame's timestamp instead of the one camera."""

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
        self._syncing = False  # set while the viewer moves its own controls: their observers then do nothing

        scenes = sorted(self.by_scene)
        self.scene = widgets.Dropdown(options=scenes, value=scenes[0], description="scene")
        self.camera = widgets.Dropdown(options=self.by_scene[scenes[0]], description="camera")
        self.frame = widgets.IntSlider(value=1, min=1, max=1, description="frame", continuous_update=False,
                                       layout=widgets.Layout(width="60%"))
        self.key_only = widgets.Checkbox(value=False, description="keyframes only")
        self.all_cameras = widgets.Checkbox(value=False, description="all 6 cameras")
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
            widgets.HBox([self.frame, self.key_only, self.all_cameras]),
            widgets.HBox([self.show_gt, self.show_dets, self.show_tracks]),
            widgets.HBox([self.classes, self.status]),
            self.output,
        ])
        self.scene.observe(self._on_scene, names="value")
        self.camera.observe(self._on_camera, names="value")
        self.frame.observe(self._on_frame, names="value")
        self.key_only.observe(lambda change: self._place(position=self.frame.value), names="value")
        self.classes.observe(lambda change: self.render(), names="value")
        for box in (self.show_gt, self.show_dets, self.show_tracks, self.all_cameras):
            box.observe(lambda change: self.render(), names="value")
        self._place(position=1)  # sets the slider's range and renders

    # -- state
    @property
    def sequence_dir(self) -> Path:
        return self.sequences[f"{self.scene.value}_{self.camera.value}"]

    def sequence_detections(self, seq_dir: Path | None = None) -> dict | None:
        """The detections of a sequence folder (default: the selected one), loaded once per sequence; None
        without a detection source."""
        if self.detection_source is None:
            return None
        seq_dir = self.sequence_dir if seq_dir is None else Path(seq_dir)
        if seq_dir.name not in self._detections:
            from trackssm_lib.detections import load_detections

            self._detections[seq_dir.name] = load_detections(self.detection_source, seq_dir, seed=self.seed)
        return self._detections[seq_dir.name]

    def scene_sequences(self) -> dict[str, Path]:
        """The selected scene's sequence folders by camera."""
        return {cam: self.sequences[f"{self.scene.value}_{cam}"] for cam in self.by_scene[self.scene.value]}

    def timestamp(self) -> int:
        """The timestamp (us) of the shown frame of the selected camera."""
        return int(load_sequence(self.sequence_dir).timestamps[self.frame.value - 1])

    def _place(self, timestamp: int | None = None, position: int | None = None) -> None:
        """Point the slider into the selected sequence and render: its frame nearest in time to ``timestamp``, else
        nearest to frame ``position``, else its first; always a keyframe while "keyframes only" is ticked (when the
        sequence has keyframes)."""
        seq = load_sequence(self.sequence_dir)
        keys = seq.frame[seq.is_key_frame]
        pool = keys if self.key_only.value and keys.size else seq.frame
        if timestamp is not None and pool.size:
            target = nearest_frame(seq, timestamp, keyframes=bool(self.key_only.value))
        elif position is not None and pool.size:
            target = int(pool[np.argmin(np.abs(pool - int(position)))])
        else:
            target = int(pool[0]) if pool.size else 1
        self._syncing = True
        try:
            self.frame.max = max(1, len(seq))  # may clamp the value: ignored while syncing
            self.frame.value = target
        finally:
            self._syncing = False
        self.render()

    def _on_scene(self, change) -> None:
        cams = self.by_scene[change["new"]]
        current = self.camera.value
        self._syncing = True  # new options select their first camera; the camera observer must not react
        try:
            self.camera.options = cams
            self.camera.value = current if current in cams else cams[0]
        finally:
            self._syncing = False
        self._place(position=self.frame.value)

    def _on_camera(self, change) -> None:
        if self._syncing or change["old"] is None:
            return
        old = self.sequences.get(f"{self.scene.value}_{change['old']}")
        if old is None:
            self._place(position=self.frame.value)
            return
        seq = load_sequence(old)
        self._place(timestamp=int(seq.timestamps[min(self.frame.value, len(seq)) - 1]))

    def _on_frame(self, change) -> None:
        if self._syncing:
            return
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

    # -- drawing
    def _draw_overview(self) -> tuple[Figure, dict]:
        """The six cameras at the shown frame's timestamp (:func:`draw_cameras`) -> (figure, summed counts with
        ``frames``: {camera: frame})."""
        t = self.timestamp()
        keyframes = bool(self.key_only.value)
        title = (f"{self.scene.value}: {self.camera.value} frame {self.frame.value}, t = {t} us; each camera's "
                 f"nearest {'keyframe' if keyframes else 'frame'}")
        fig, cams = _overview(self.scene_sequences(), t, title, width=1.6 * self.figsize[0],
                              classes=list(self.classes.value), keyframes=keyframes, dataroot=self.dataroot,
                              show_gt=self.show_gt.value,
                              results_dir=self.results_dir if self.show_tracks.value else None,
                              detections=self.sequence_detections if self.show_dets.value else None)
        info = {k: int(sum(c[k] for c in cams.values())) for k in ("boxes", "detections", "tracker_boxes")}
        info.update(has_image=any(c["has_image"] for c in cams.values()),
                    is_key_frame=all(c["is_key_frame"] for c in cams.values()),
                    name=f"{self.scene.value} (all cameras)", frames={cam: c["frame"] for cam, c in cams.items()})
        return fig, info

    def render(self) -> dict:
        """Draw the selected frame (or, with "all 6 cameras", the six cameras at its timestamp) into the Output
        widget (its ``outputs`` are set directly, as a PNG: no output capture through the kernel, so it behaves the
        same live, under papermill and outside IPython). Returns the counts, also kept in ``last_info``."""
        fig = None
        try:
            if self.all_cameras.value:
                fig, info = self._draw_overview()
            else:
                fig, ax = plt.subplots(figsize=self.figsize)
                info = draw_frame(ax, self.sequence_dir, self.frame.value, classes=list(self.classes.value),
                                  dataroot=self.dataroot, show_gt=self.show_gt.value,
                                  results_dir=self.results_dir if self.show_tracks.value else None,
                                  detections=self.sequence_detections() if self.show_dets.value else None)
                fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=self.dpi)
        finally:
            if fig is not None:
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
