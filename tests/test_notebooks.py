"""Smoke tests of the report: the notebooks run under papermill with the tiny profile's parameters on a tiny
synthetic dataset and record sane key figures; the viewer, the figure records and the profiles are checked too."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from trackssm_lib.constants import CLASS_NAMES
from trackssm_lib.viewer import load_sequence
from trackssm_lib.records import load_figures, record_figures
from trackssm_lib.report import PROJECT_ROOT, load_profile, notebook_parameters, run_report

NOTEBOOKS = PROJECT_ROOT / "notebooks"
TINY = PROJECT_ROOT / "configs" / "report_tiny.yaml"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """2 synthetic v1.0-mini scenes with keyframe images (no sweep images, as in real test data)."""
    from trackssm_lib.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("tiny") / "nusc", version="v1.0-mini", n_scenes=2, seed=0,
                            images=True, progress=False)


def run_notebook(name: str, out: Path, **params) -> dict:
    import papermill

    prof = load_profile(TINY)
    parameters = {**prof["parameters"][name], "profile": str(TINY), **params, "output_dir": str(out)}
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out / f"{name}.ipynb"),
                               parameters=parameters, kernel_name="python3", progress_bar=False,
                               cwd=str(PROJECT_ROOT), execution_timeout=300)
    return load_figures(out / f"{name}.json")


# ---------------------------------------------------------------- notebooks under papermill

def test_projection_notebook(tiny_root, tmp_path):
    fig = run_notebook("01_projection_sanity", tmp_path, dataroot=str(tiny_root), version="v1.0-mini")
    assert Path(fig["kernel_python"]) == Path(sys.executable)  # the kernel runs this environment's python
    assert fig["n_samples_shown"] == 1
    assert fig["cameras"] == ["CAM_FRONT", "CAM_BACK"]
    shares = fig["visible_share"]
    assert set(shares) == {"CAM_FRONT", "CAM_BACK"}
    assert all(0.0 <= v <= 1.0 for v in shares.values())
    assert shares["CAM_FRONT"] > 0
    assert fig["visible_boxes"] > 0
    assert all(n > 0 for n in fig["annotations_per_camera"].values())
    clip = fig["clip"]
    assert clip["compared"] > 0
    assert 0 <= clip["differing"] <= clip["compared"]
    assert clip["max_diff_px"] >= 0
    assert (clip["differing"] > 0) == (clip["max_diff_px"] > 0.01)


def test_interpolation_notebook(tiny_root, tmp_path):
    export = tmp_path / "export"
    fig = run_notebook("02_interpolation", tmp_path, dataroot=str(tiny_root), version="v1.0-mini",
                       export_dir=str(export))
    assert Path(fig["kernel_python"]) == Path(sys.executable)
    assert fig["sequences"] == 2 * 2  # 2 scenes x 2 cameras
    assert fig["boxes"] > 0 and fig["frames"] > 0
    assert fig["keyframe_boxes"] + fig["interpolated_boxes"] == fig["boxes"]
    assert 0 < fig["keyframe_share"] < 1
    assert sum(fig["per_class"].values()) == fig["boxes"]
    assert (export / "stats.json").is_file() and len(list(export.glob("*/*/gt/gt.txt"))) == 4
    assert fig["viewer_frames"] >= 2
    assert set(fig["track"]["boxes_per_mode"]) == {"3d", "devkit", "linear2d"}
    hold = fig["holdout"]
    assert set(hold) == {"3d", "devkit", "linear2d"}
    for mode, row in hold.items():
        assert row["n"] > 0, mode
        assert 0.0 < row["mean_iou"] <= 1.0, mode
        assert row["mean_center_error_px"] >= 0, mode
    # interpolating in 3D with each frame's own pose beats halfway-in-the-image on the same boxes
    assert hold["3d"]["mean_iou"] >= hold["linear2d"]["mean_iou"]
    assert all(r["mode"] in hold for r in fig["holdout_rows"])


def test_notebooks_committed_clean():
    """Thin notebooks: one `parameters` cell, no outputs, no execution counts, parameters match the profiles."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
    for profile in sorted((PROJECT_ROOT / "configs").glob("report_*.yaml")):
        prof = load_profile(profile)
        for name in prof["notebooks"]:
            declared = notebook_parameters(NOTEBOOKS / f"{name}.ipynb")
            assert set(prof["parameters"].get(name, {})) <= set(declared), (profile.name, name)


# ---------------------------------------------------------------- report

def test_profile_unknown_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"version": "v1.0-mini", "scenes_limit": 3}))
    with pytest.raises(ValueError, match=r"scenes_limit.*bad\.yaml"):
        load_profile(bad)
    bad.write_text(yaml.safe_dump({"synthetic": {"folder": "x", "colour": 1}}))
    with pytest.raises(ValueError, match=r"synthetic\.colour.*bad\.yaml"):
        load_profile(bad)


def test_profile_unknown_notebook_parameter(tmp_path, tiny_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"dataroot": str(tiny_root), "output_dir": str(tmp_path / "out"),
                                   "book_dir": str(tmp_path / "book"),
                                   "parameters": {"01_projection_sanity": {"n_sample": 2}}}))
    with pytest.raises(ValueError, match=r"n_sample.*01_projection_sanity"):
        run_report(bad)
    assert not (tmp_path / "out").exists()  # rejected before any work


def test_run_report_tiny(tiny_root, tmp_path):
    """The whole report (both notebooks, then the book) from the tiny profile into a copy of the book sources."""
    book = tmp_path / "book"
    book.mkdir()
    for name in ("_config.yml", "_toc.yml", "intro.md"):
        shutil.copy(PROJECT_ROOT / "book" / name, book / name)
    prof = yaml.safe_load(TINY.read_text())
    prof.update({"book_dir": str(book), "notebook_dir": str(NOTEBOOKS), "output_dir": str(tmp_path / "out")})
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump(prof))
    index = run_report(profile, dataroot=str(tiny_root), version="v1.0-mini")
    assert index == book / "_build" / "html" / "index.html" and index.is_file()
    for name in ("01_projection_sanity", "02_interpolation"):
        executed = nbformat.read(book / "chapters" / f"{name}.ipynb", as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")
        assert (book / "_build" / "html" / "chapters" / f"{name}.html").is_file()
        assert (tmp_path / "out" / f"{name}.json").is_file()
    assert "synthetic" in (book / "chapters" / "run_info.md").read_text()  # recognised by its synth.json
    run = json.loads((tmp_path / "out" / "report_run.json").read_text())
    assert run["synthetic"] is True and run["dataroot"] == str(tiny_root)
    # the book reads as a report: no machine path, no cut tables, no traceback on any page
    for page in sorted((book / "_build" / "html").rglob("*.html")) + sorted((book / "_build").rglob("*.ipynb")):
        html = page.read_text()  # the pages, and the executed notebooks the book offers for download
        for bad in (str(PROJECT_ROOT), str(tmp_path), "Traceback", " rows × ", " columns]"):
            assert bad not in html, (page.name, bad)


def _notebooks_folder() -> list[str]:
    return sorted(str(p.relative_to(NOTEBOOKS)) for p in NOTEBOOKS.rglob("*"))


def test_chapter_05_alone_from_the_notebooks_folder_makes_what_it_needs(tiny_root, tmp_path):
    """As a JupyterLab user runs it: the kernel in notebooks/, only the profile given (here the tiny one, on a tiny
    dataset, writing to a temporary folder). The chapter makes chapter 02's export and chapters 03 / 04's weights
    with the profile's parameters, resolves every relative path from the project root and writes nothing inside
    notebooks/."""
    import papermill

    from trackssm_lib.report import chapter_inputs, notebook_run_parameters

    prof = yaml.safe_load(TINY.read_text())
    prof.update(dataroot=str(tiny_root), output_dir=str(tmp_path / "out"))
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(prof))
    # the chapter finds what a report run with the same profile makes, and the report passes the same
    inputs = chapter_inputs(profile, need_dataset=False)
    loaded = load_profile(profile)
    ds = {"dataroot": tiny_root, "version": "v1.0-mini"}
    report_params = notebook_run_parameters(loaded, NOTEBOOKS, ds, tmp_path / "out")
    assert report_params["05_evaluation"]["export_dir"] == str(inputs.export_dir)
    before = _notebooks_folder()
    params = {**prof["parameters"]["05_evaluation"], "profile": str(profile)}
    papermill.execute_notebook(str(NOTEBOOKS / "05_evaluation.ipynb"), str(tmp_path / "05.ipynb"),
                               parameters=params, kernel_name="python3", progress_bar=False, cwd=str(NOTEBOOKS),
                               execution_timeout=600)
    assert _notebooks_folder() == before
    assert (inputs.export_dir / "seqmaps").is_dir()
    for phase in ("phase1/phase1_decoder_best.pth", "phase2/phase2_full_best.pth"):
        assert (tmp_path / "out" / "training" / "weights" / phase).is_file(), phase
    fig = load_figures(tmp_path / "out" / "05_evaluation.json")
    assert {r["tracker"] for r in fig["rows"] if r["status"] == "ok"} == {"kalman", "trackssm-phase2"}


# ---------------------------------------------------------------- viewer on a hand-made export

@pytest.fixture()
def fake_export(tmp_path) -> Path:
    """A tiny export: split mini_train, 2 sequences of 4 frames (keyframes 1 and 4), keyframe JPEGs only."""
    from PIL import Image

    root = tmp_path / "data"
    out = tmp_path / "export"
    for camera in ("CAM_FRONT", "CAM_BACK"):
        seq = out / "mini_train" / f"scene-0061_{camera}"
        (seq / "gt").mkdir(parents=True)
        rows, files = [], []
        for f in range(1, 5):
            key = f in (1, 4)
            name = f"samples/{camera}/f{f}.jpg" if key else f"sweeps/{camera}/f{f}.jpg"
            files.append(f"{f},tok{f},{1000 * f},{int(key)},{name}\n")
            rows.append(f"{f},1,{100 + 10 * f},200,50,40,1,0,4,-1\n")           # car, track 1
            if f <= 2:
                rows.append(f"{f},2,{600 + f},300,20,60,1,4,2,-1\n")       # pedestrian, track 2
        (root / "samples" / camera).mkdir(parents=True, exist_ok=True)
        for f in (1, 4):
            Image.new("RGB", (1600, 900), (90, 120, 160)).save(root / "samples" / camera / f"f{f}.jpg")
        (seq / "gt" / "gt.txt").write_text("".join(rows))
        (seq / "gt" / "ids.csv").write_text("track_id,instance_token,class_name,class_id\n1,i1,car,0\n"
                                            "2,i2,pedestrian,4\n")
        (seq / "frames.csv").write_text("frame,sample_data_token,timestamp_us,is_key_frame,filename\n"
                                        + "".join(files))
        (seq / "seqinfo.ini").write_text(f"[Sequence]\nname=scene-0061_{camera}\nimDir={root}\nframeRate=12\n"
                                         "seqLength=4\nimWidth=1600\nimHeight=900\nimExt=.jpg\n")
    return out


def test_draw_frame(fake_export):
    import matplotlib.pyplot as plt

    from trackssm_lib.viewer import draw_frame, example_frames

    seq = fake_export / "mini_train" / "scene-0061_CAM_FRONT"
    fig, ax = plt.subplots()
    try:
        info = draw_frame(ax, seq, 1)
        assert info == {"boxes": 2, "detections": 0, "tracker_boxes": 0, "has_image": True, "is_key_frame": True,
                        "name": "scene-0061_CAM_FRONT"}
        ax.clear()
        info = draw_frame(ax, seq, 2, classes=["car"])
        assert info["boxes"] == 1 and not info["has_image"] and not info["is_key_frame"]
        assert any("no image for this sweep" in t.get_text() for t in ax.texts)
        assert all(p.get_linestyle() == "--" for p in ax.patches)  # interpolated boxes dashed
        with pytest.raises(ValueError, match="outside"):
            draw_frame(ax, seq, 9)
    finally:
        plt.close(fig)
    assert example_frames(seq) == [1, 2, 3, 4]


def test_viewer(fake_export):
    import ipywidgets

    from trackssm_lib.viewer import SequenceViewer, view_sequences

    viewer = SequenceViewer(fake_export, split="mini_train")
    assert viewer.last_info["boxes"] == 2 and viewer.last_info["has_image"]
    assert viewer.png.startswith(b"\x89PNG") and viewer.output.outputs
    assert viewer.frame.max == 4
    viewer.frame.value = 3                       # a sweep: no image, one box
    assert viewer.last_info == {"boxes": 1, "detections": 0, "tracker_boxes": 0, "has_image": False,
                                "is_key_frame": False, "name": "scene-0061_CAM_FRONT"}
    viewer.camera.value = "CAM_BACK"
    assert viewer.last_info["name"] == "scene-0061_CAM_BACK"
    viewer.frame.value = 1
    viewer.classes.value = ("pedestrian",)
    assert viewer.last_info["boxes"] == 1
    viewer.key_only.value = True
    viewer.frame.value = 2                       # snaps forward to the next keyframe
    assert viewer.frame.value == 4 and viewer.last_info["is_key_frame"]
    viewer.classes.value = tuple(CLASS_NAMES)
    assert isinstance(view_sequences(fake_export, "mini_train"), ipywidgets.Widget)
    with pytest.raises(FileNotFoundError, match="no exported sequences"):
        SequenceViewer(fake_export, split="mini_val")


def test_viewer_shows_tracker_output_and_detections(fake_export, tmp_path):
    from trackssm_lib.viewer import SequenceViewer

    seq = load_sequence(fake_export / "mini_train" / "scene-0061_CAM_FRONT")
    results = tmp_path / "results"
    results.mkdir()
    gt = np.loadtxt(seq.path / "gt" / "gt.txt", delimiter=",", ndmin=2)
    # the tracker output: the ground truth of frame 1 with other ids, plus one extra box
    rows = [f"{int(r[0])},{int(r[1]) + 10},{r[2]},{r[3]},{r[4]},{r[5]},0.9,{int(r[7])},-1,-1" for r in gt if r[0] == 1]
    rows.append("1,99,10,10,20,20,0.5,0,-1,-1")
    (results / "scene-0061_CAM_FRONT.txt").write_text("\n".join(rows) + "\n")
    viewer = SequenceViewer(fake_export, split="mini_train", results_dir=results, detections="gt")
    n_gt = int(np.sum(gt[:, 0] == 1))
    assert viewer.last_info["tracker_boxes"] == n_gt + 1 and viewer.last_info["detections"] == n_gt
    viewer.show_tracks.value = False
    assert viewer.last_info["tracker_boxes"] == 0
    viewer.show_gt.value = False
    assert viewer.last_info["boxes"] == 0 and viewer.last_info["detections"] == n_gt
    viewer.classes.value = ("pedestrian",)
    assert viewer.last_info["detections"] == int(np.sum((gt[:, 0] == 1) & (gt[:, 7] == 4)))


# ---------------------------------------------------------------- records

def test_record_figures(tmp_path):
    path = tmp_path / "sub" / "fig.json"
    out = record_figures(path, {"b": np.float32(0.5), "a": np.int64(3), "arr": np.arange(3), "nan": float("nan"),
                                "flag": np.bool_(True), "nested": {1: np.float64(2.0)}, "p": Path("x/y")})
    assert out == path
    text = path.read_text()
    assert text.index('"a"') < text.index('"arr"') < text.index('"b"')  # sorted keys
    assert json.loads(text) == {"a": 3, "arr": [0, 1, 2], "b": 0.5, "flag": True, "nan": None,
                                "nested": {"1": 2.0}, "p": "x/y"}
    assert load_figures(path)["a"] == 3
    record_figures(path, {"c": 1}, merge=True)
    assert set(load_figures(path)) == {"a", "arr", "b", "c", "flag", "nan", "nested", "p"}
    record_figures(path, {"c": 2})
    assert load_figures(path) == {"c": 2}
    assert [p.name for p in path.parent.iterdir()] == ["fig.json"]  # no temporary file left behind
    with pytest.raises(TypeError):
        record_figures(path, {"bad": object()})
    assert load_figures(path) == {"c": 2}  # a failed write leaves the previous file intact
    with pytest.raises(FileNotFoundError):
        load_figures(tmp_path / "missing.json")
