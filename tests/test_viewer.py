"""The sequence viewer: "keyframes only" holds across camera and scene changes (controls driven by setting their
``.value``), a camera change keeps the moment, and the 6-camera overview of one timestamp (function and toggle)."""
from __future__ import annotations

from pathlib import Path

import pytest

from trackssm_lib.constants import CAMERAS
from trackssm_lib.viewer import OVERVIEW_CAMERAS, load_sequence

STEP_US = 83_333        # 12 Hz
T0_US = 1_000_000
SCENE_A, SCENE_B = "scene-0001", "scene-0002"


def lead(scene: str, camera: str) -> int:
    """Sweeps before a sequence's first keyframe: scene A alternates 0 and 1 along CAMERAS, so the same frame number
    is a keyframe in one camera and a sweep in the next; scene B has 2 (keyframes 3 and 9)."""
    return CAMERAS.index(camera) % 2 if scene == SCENE_A else 2


def offset_us(camera: str) -> int:
    """Each camera fires a little later than the one before it (as nuScenes' cameras do): 0..25 ms."""
    return 5_000 * CAMERAS.index(camera)


def write_sequence(split_dir: Path, scene: str, camera: str, n_frames: int) -> None:
    """An exported sequence without images: keyframes every 6 frames after the lead, one car per frame."""
    seq = split_dir / f"{scene}_{camera}"
    (seq / "gt").mkdir(parents=True)
    k = lead(scene, camera)
    rows, files = [], []
    for f in range(1, n_frames + 1):
        key = f > k and (f - 1 - k) % 6 == 0
        files.append(f"{f},tok{f},{T0_US + offset_us(camera) + STEP_US * (f - 1 - k)},{int(key)},\n")
        rows.append(f"{f},1,{100 + 5 * f},200,50,40,1,0,1,-1\n")
    (seq / "gt" / "gt.txt").write_text("".join(rows))
    (seq / "gt" / "ids.csv").write_text("track_id,instance_token,class_name,class_id\n1,i1,car,0\n")
    (seq / "frames.csv").write_text("frame,sample_data_token,timestamp_us,is_key_frame,filename\n" + "".join(files))
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={scene}_{camera}\nimDir={split_dir.parent / 'data'}\n"
                                     f"frameRate=12\nseqLength={n_frames}\nimWidth=1600\nimHeight=900\nimExt=.jpg\n")


@pytest.fixture()
def six_camera_export(tmp_path) -> Path:
    """Split mini_train: scene A in all 6 cameras (13 or 14 frames, keyframes at 1/7/13 or 2/8/14), scene B in
    CAM_FRONT and CAM_BACK only (14 frames, keyframes 3 and 9)."""
    split = tmp_path / "export" / "mini_train"
    for camera in CAMERAS:
        write_sequence(split, SCENE_A, camera, 13 + lead(SCENE_A, camera))
    for camera in ("CAM_FRONT", "CAM_BACK"):
        write_sequence(split, SCENE_B, camera, 14)
    return tmp_path / "export"


def shown_is_keyframe(viewer) -> bool:
    return bool(load_sequence(viewer.sequence_dir).is_key_frame[viewer.frame.value - 1])


def test_keyframes_only_holds_after_camera_change(six_camera_export):
    from trackssm_lib.viewer import SequenceViewer

    viewer = SequenceViewer(six_camera_export, split="mini_train")
    assert (viewer.scene.value, viewer.camera.value) == (SCENE_A, "CAM_FRONT")
    viewer.key_only.value = True
    viewer.frame.value = 7                                   # a CAM_FRONT keyframe
    for camera in CAMERAS[1:]:                               # each change alternates the keyframes' positions
        viewer.camera.value = camera
        assert viewer.last_info["name"] == f"{SCENE_A}_{camera}"
        assert viewer.frame.value == 7 + lead(SCENE_A, camera)  # the keyframe of the same moment
        assert shown_is_keyframe(viewer) and viewer.last_info["is_key_frame"]
    # the slider steps over keyframes only, both ways
    last = viewer.frame.value
    viewer.frame.value = last + 1
    assert viewer.frame.value == last + 6 and viewer.last_info["is_key_frame"]
    viewer.frame.value = viewer.frame.value - 1
    assert viewer.frame.value == last and viewer.last_info["is_key_frame"]
    # unticked, a camera change keeps the moment: CAM_FRONT frame 3 (a sweep) is CAM_FRONT_RIGHT frame 4
    viewer.key_only.value = False
    viewer.camera.value = "CAM_FRONT"
    assert viewer.frame.value == 7                           # CAM_FRONT_LEFT frame 8 is 25 ms after it
    viewer.frame.value = 3
    viewer.camera.value = "CAM_FRONT_RIGHT"
    assert viewer.frame.value == 4 and not viewer.last_info["is_key_frame"]
    # ticked again on a sweep: the nearest keyframe
    viewer.key_only.value = True
    assert viewer.frame.value == 2 and viewer.last_info["is_key_frame"]


def test_keyframes_only_holds_after_scene_change(six_camera_export):
    from trackssm_lib.viewer import SequenceViewer

    viewer = SequenceViewer(six_camera_export, split="mini_train")
    viewer.key_only.value = True
    viewer.frame.value = 7                                   # CAM_FRONT keyframe of scene A; a sweep in scene B
    viewer.scene.value = SCENE_B
    assert viewer.camera.value == "CAM_FRONT" and viewer.frame.max == 14
    assert viewer.frame.value == 9 and shown_is_keyframe(viewer) and viewer.last_info["is_key_frame"]
    assert viewer.last_info["name"] == f"{SCENE_B}_CAM_FRONT"
    viewer.scene.value = SCENE_A
    assert viewer.frame.value == 7 and shown_is_keyframe(viewer)
    viewer.camera.value = "CAM_FRONT_RIGHT"                  # keyframe 8; scene B has no such camera
    viewer.scene.value = SCENE_B
    assert viewer.camera.value == "CAM_FRONT" and list(viewer.camera.options) == ["CAM_FRONT", "CAM_BACK"]
    assert viewer.frame.value == 9 and viewer.last_info["is_key_frame"]
    viewer.frame.value = 8                                   # steps back to the keyframe before
    assert viewer.frame.value == 3 and viewer.last_info["is_key_frame"]


def test_cameras_overview_figure(six_camera_export):
    import matplotlib.pyplot as plt

    from trackssm_lib.viewer import cameras_overview_figure

    assert OVERVIEW_CAMERAS == ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT",
                                "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")
    cases = [  # (arguments, expected frame per camera, keyframe or sweep)
        ({"keyframe": 1}, lambda cam: 7 + lead(SCENE_A, cam), "keyframe"),
        ({"timestamp": T0_US + 4 * STEP_US, "keyframes": False}, lambda cam: 5 + lead(SCENE_A, cam), "sweep"),
        ({"timestamp": T0_US + 4 * STEP_US}, lambda cam: 7 + lead(SCENE_A, cam), "keyframe"),
    ]
    for kwargs, expected, kind in cases:
        fig = cameras_overview_figure(six_camera_export, SCENE_A, split="mini_train", detections="gt", **kwargs)
        try:
            assert len(fig.axes) == 6
            titles = [ax.get_title() for ax in fig.axes]
            assert [t.split()[0] for t in titles] == list(OVERVIEW_CAMERAS)
            for title, camera in zip(titles, OVERVIEW_CAMERAS):
                n = 13 + lead(SCENE_A, camera)
                assert f"frame {expected(camera)}/{n} ({kind}," in title, (kwargs, title)
        finally:
            plt.close(fig)
    fig = cameras_overview_figure(six_camera_export, SCENE_B, keyframe=-1)
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert len(titles) == 6
        assert sum("(not exported)" in t for t in titles) == 4
        assert titles[1].startswith("CAM_FRONT  frame 9/14") and titles[4].startswith("CAM_BACK  frame 9/14")
    finally:
        plt.close(fig)
    with pytest.raises(IndexError, match="keyframe 5"):
        cameras_overview_figure(six_camera_export, SCENE_B, keyframe=5)
    with pytest.raises(FileNotFoundError, match="scene-0404"):
        cameras_overview_figure(six_camera_export, "scene-0404")


def test_viewer_all_cameras_toggle(six_camera_export):
    from trackssm_lib.viewer import SequenceViewer

    viewer = SequenceViewer(six_camera_export, split="mini_train", detections="gt")
    viewer.key_only.value = True
    viewer.frame.value = 7
    single = viewer.png
    viewer.all_cameras.value = True
    info = viewer.last_info
    assert info["frames"] == {cam: 7 + lead(SCENE_A, cam) for cam in CAMERAS}
    assert info["boxes"] == 6 and info["detections"] == 6 and info["is_key_frame"]
    assert viewer.png.startswith(b"\x89PNG") and viewer.png != single
    viewer.camera.value = "CAM_BACK"                         # the overview follows the controls
    assert viewer.last_info["frames"]["CAM_BACK"] == viewer.frame.value == 8
    viewer.scene.value = SCENE_B
    assert viewer.last_info["frames"] == {"CAM_BACK": 9, "CAM_FRONT": 9}
    viewer.all_cameras.value = False
    assert viewer.last_info["name"] == f"{SCENE_B}_CAM_BACK" and viewer.last_info["is_key_frame"]
