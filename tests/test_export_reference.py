"""Export checked against independent references, box by box, through the files as written.

The other export tests check the layout and that TrackEval can read the files; a box written as ``x2,y2`` where
``gt.txt`` holds ``w,h`` would pass them. Here every ``gt/gt.txt`` row is read back, turned into ``x1,y1,x2,y2``
by the MOT convention (``x2 = x + w``) and compared with a reference box:

- real nuScenes scene (``interp="devkit", clip="devkit"``): the devkit's own ``NuScenes.get_boxes`` projected box
  by box as its export script does (:mod:`trackssm_lib.devkit_reference`), same set of (frame, instance) keys,
  0.01 px (the files hold 3 decimals);
- synthetic data (default ``3d`` / ``exact``): the project's own :func:`trackssm_lib.interpolation.sequence_boxes`
  (the function the export calls), which isolates the file format: frames, ids, boxes, classes, visibilities.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trackssm_lib.constants import CLASS_IDS, tracking_class
from trackssm_lib.export import prepare
from trackssm_lib.frames import camera_frames
from trackssm_lib.interpolation import sequence_boxes
from trackssm_lib.splits import scene_split_map

REAL_SCENE_NAME = "scene-0916"
BOX_TOL_PX = 0.01
# (camera, frame stride): CAM_FRONT every frame (a whole sequence, ~240 frames); CAM_BACK_RIGHT every 5th frame
# plus every keyframe (sweeps and keyframes of a second calibration, at a fifth of the cost). The devkit reference
# costs ~30 ms per frame, so the two cameras together stay near 10 s.
REAL_CAMERAS = (("CAM_FRONT", 1), ("CAM_BACK_RIGHT", 5))


def read_exported_boxes(seq_dir: Path) -> dict[tuple[int, str], dict]:
    """``(frame, instance_token) -> {"box": (x1, y1, x2, y2), "class_id", "visibility", "track_id"}`` read back
    from an exported sequence's ``gt/gt.txt`` (``frame,id,x,y,w,h,1,class,visibility,-1``) and ``gt/ids.csv``
    (track id -> instance token). Fails on a duplicate (frame, instance) key or an id missing from ``ids.csv``."""
    ids = np.genfromtxt(seq_dir / "gt" / "ids.csv", delimiter=",", names=True, dtype=None, encoding="utf-8",
                        ndmin=1)
    token_of = {int(r["track_id"]): str(r["instance_token"]) for r in ids}
    out: dict[tuple[int, str], dict] = {}
    for row in np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2):
        assert len(row) == 10 and row[6] == 1 and row[9] == -1, f"{seq_dir.name}: bad row {row}"
        track = int(row[1])
        assert track in token_of, f"{seq_dir.name}: track id {track} not in ids.csv"
        x, y, w, h = (float(v) for v in row[2:6])
        key = (int(row[0]), token_of[track])
        assert key not in out, f"{seq_dir.name}: two rows for {key}"
        out[key] = {"box": (x, y, x + w, y + h), "class_id": int(row[7]), "visibility": int(row[8]),
                    "track_id": track}
    return out


def devkit_reference_boxes(nusc, scene: str, camera: str, stride: int
                           ) -> dict[tuple[int, str], tuple[tuple[float, float, float, float], int]]:
    """``(frame, instance_token) -> ((x1, y1, x2, y2), class_id)`` from the devkit, for the camera's frames
    ``1, 1 + stride, ...`` and every keyframe; tracked classes only, boxes with area only (as the export keeps)."""
    from trackssm_lib.devkit_reference import devkit_frame_boxes

    cam = camera_frames(nusc, scene, camera)
    frames = sorted(set(range(0, len(cam), stride)) | set(np.flatnonzero(cam.is_key_frame).tolist()))
    out = {}
    for f in frames:
        for ann_token, box in devkit_frame_boxes(nusc, cam.tokens[f]).items():
            if box is None or not (box[2] > box[0] and box[3] > box[1]):
                continue
            ann = nusc.get("sample_annotation", ann_token)
            cls = tracking_class(ann["category_name"])
            if cls is not None:
                out[(f + 1, ann["instance_token"])] = (tuple(float(v) for v in box), CLASS_IDS[cls])
    return out


def max_box_difference(ours: dict, ref: dict) -> tuple[float, tuple]:
    """The largest coordinate difference over the keys of ``ref`` (boxes as ``ours[k]["box"]`` and ``ref[k][0]``)
    and its key."""
    worst, where = 0.0, None
    for key, (box, _) in ref.items():
        d = float(np.max(np.abs(np.subtract(ours[key]["box"], box))))
        if d > worst or where is None:
            worst, where = d, key
    return worst, where


@pytest.fixture(scope="module")
def real_devkit_export(real_scene_root, real_nusc, tmp_path_factory) -> Path:
    """The real scene exported with ``interp="devkit", clip="devkit"`` for the cameras of ``REAL_CAMERAS``; the
    split folder."""
    out = tmp_path_factory.mktemp("export_devkit") / "out"
    prepare(real_scene_root, "v1.0-mini", out, cameras=[c for c, _ in REAL_CAMERAS], interp="devkit",
            clip="devkit", progress=False, nusc=real_nusc)
    return out / scene_split_map(real_nusc)[REAL_SCENE_NAME]


@pytest.mark.parametrize("camera, stride", REAL_CAMERAS)
def test_real_devkit_export_matches_devkit_boxes(real_devkit_export, real_nusc, camera, stride):
    """gt.txt read back (x, y, w, h -> x1, y1, x2, y2) equals the devkit's boxes within 0.01 px, with the same
    (frame, instance) keys on the frames checked, and the class column is the annotation's tracking class."""
    ours = read_exported_boxes(real_devkit_export / f"{REAL_SCENE_NAME}_{camera}")
    ref = devkit_reference_boxes(real_nusc, REAL_SCENE_NAME, camera, stride)
    checked = {f for f, _ in ref}
    ours = {k: v for k, v in ours.items() if k[0] in checked}
    assert len(ref) > 100, f"too few reference boxes ({len(ref)}) for a meaningful check"
    missing, extra = sorted(set(ref) - set(ours)), sorted(set(ours) - set(ref))
    assert not missing and not extra, (f"{camera}: {len(missing)} devkit boxes not exported (first {missing[:3]}), "
                                       f"{len(extra)} exported boxes not in the devkit's (first {extra[:3]})")
    worst, where = max_box_difference(ours, ref)
    assert worst < BOX_TOL_PX, f"{camera}: box {where} differs by {worst:.4f} px: ours {ours[where]['box']}, " \
                               f"devkit {ref[where][0]}"
    wrong_class = [k for k, (_, cls) in ref.items() if ours[k]["class_id"] != cls]
    assert not wrong_class, f"{camera}: class column differs from the annotation's class at {wrong_class[:3]}"


def test_synthetic_export_file_matches_sequence_boxes(synth_root, synth_nusc, tmp_path):
    """Default export (``3d``, ``exact``) of the synthetic scenes, two cameras: every gt.txt row read back equals
    :func:`sequence_boxes` for its (frame, instance) (box within 0.001 px of the 3-decimal text, class id,
    visibility), with the same set of keys, and track ids number the instances 1.. in order of first appearance."""
    cameras = ["CAM_FRONT", "CAM_BACK_LEFT"]
    out = tmp_path / "out"
    prepare(synth_root, "v1.0-mini", out, cameras=cameras, progress=False, nusc=synth_nusc)
    split_of = scene_split_map(synth_nusc)
    compared = 0
    for scene in sorted(s["name"] for s in synth_nusc.scene):
        for camera in cameras:
            seq = out / split_of[scene] / f"{scene}_{camera}"
            ours = read_exported_boxes(seq)
            _, boxes = sequence_boxes(synth_nusc, scene, camera)
            ref = {(int(f), str(t)): (tuple(map(float, b)), int(c), int(v))
                   for f, t, b, c, v in zip(boxes.frame, boxes.instance_token, boxes.boxes, boxes.class_id,
                                            boxes.visibility)}
            assert set(ours) == set(ref), f"{seq.name}: different (frame, instance) keys"
            for key, (box, cls, vis) in ref.items():
                got = ours[key]
                assert np.max(np.abs(np.subtract(got["box"], box))) < 1e-3, (seq.name, key, got["box"], box)
                assert (got["class_id"], got["visibility"]) == (cls, vis), (seq.name, key)
            by_appearance = dict.fromkeys(t for _, t in sorted(ours))  # (frame, token) order, first kept
            track_of = {t: i + 1 for i, t in enumerate(by_appearance)}
            assert all(v["track_id"] == track_of[k[1]] for k, v in ours.items()), seq.name
            compared += len(ref)
    assert compared > 100, f"too few synthetic boxes ({compared}) for a meaningful check"
