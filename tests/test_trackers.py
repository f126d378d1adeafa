"""Trackers: shared class-aware association, Kalman / TrackSSM motion models, multi-camera batching, run_tracking."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trackssm_lib.detections import load_detections
from trackssm_lib.trackers import (
    BaseTracker,
    KalmanTracker,
    MultiCameraTracker,
    TrackSSMTracker,
    iou_distance,
    linear_assignment,
)
from trackssm_lib.trackers.boxmot_adapter import BoxMOTTracker, TrackerUnavailableError

CAR, PED = 0, 4


def det(x1, y1, x2, y2, score=0.9, cls=CAR):
    return np.array([[x1, y1, x2, y2, score, cls]], dtype=np.float64)


NONE = np.zeros((0, 6))


class LastBoxModel(torch.nn.Module):
    """Stub TrackSSM: next box = last box + last delta (constant velocity), counts calls and batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def predict(self, condition, class_ids=None):
        self.calls.append(len(condition))
        return condition[:, -1, :4] + condition[:, -1, 4:]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("trk")
    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", progress=False)
    return tmp / "export"


# ----------------------------------------------------------------------------------------------- assignment
def test_linear_assignment_threshold_and_gating():
    cost = np.array([[0.1, 0.9], [0.85, 0.2]])
    m, ur, uc = linear_assignment(cost, 0.8)
    assert sorted(map(tuple, m.tolist())) == [(0, 0), (1, 1)]
    m, ur, uc = linear_assignment(np.array([[0.9]]), 0.8)
    assert len(m) == 0 and ur.tolist() == [0] and uc.tolist() == [0]
    boxes = np.array([[0, 0, 10, 10]])
    gated = iou_distance(boxes, boxes, np.array([PED]), np.array([CAR]))
    assert gated[0, 0] > 1
    assert iou_distance(boxes, boxes, np.array([CAR]), np.array([CAR]))[0, 0] == pytest.approx(0)


def test_class_gating_car_never_continues_pedestrian():
    trk = KalmanTracker(frame_rate=12)
    out = trk.update(det(100, 100, 150, 250, cls=PED))
    assert out[:, 4].tolist() == [1] and out[0, 6] == PED
    seen = {}
    for _ in range(5):
        out = trk.update(det(100, 100, 150, 250, cls=CAR))
        for row in out:
            seen.setdefault(int(row[4]), set()).add(int(row[6]))
    assert 1 not in seen  # the pedestrian track never took the car detection
    assert seen == {2: {CAR}}
    # without class awareness the same detection continues the pedestrian track
    blind = KalmanTracker(frame_rate=12, class_aware=False)
    blind.update(det(100, 100, 150, 250, cls=PED))
    assert blind.update(det(100, 100, 150, 250, cls=CAR))[:, 4].tolist() == [1]


def test_lost_track_reactivated_with_same_id():
    trk = KalmanTracker(frame_rate=12)
    for _ in range(3):
        assert trk.update(det(100, 100, 200, 180))[:, 4].tolist() == [1]
    for _ in range(5):
        assert len(trk.update(NONE)) == 0
    assert len(trk.lost) == 1
    out = trk.update(det(101, 100, 201, 180))
    assert out[:, 4].tolist() == [1]
    assert len(trk.lost) == 0


@pytest.mark.parametrize("tracker_cls", ["kalman", "trackssm"])
def test_lost_timeout_in_seconds(tracker_cls):
    def make(fps):
        if tracker_cls == "kalman":
            return KalmanTracker(frame_rate=fps)
        return TrackSSMTracker(LastBoxModel(), frame_rate=fps, image_size=(1600, 900))

    assert make(12).max_time_lost == 12 and make(30).max_time_lost == 30  # official 30 frames at 30 fps = 1 s

    def reappears_with(fps, gap_s):
        trk = make(fps)
        for _ in range(fps):  # seen for 1 s
            trk.update(det(100, 100, 200, 180))
        for _ in range(int(round(gap_s * fps)) - 1):  # the detection is gone for gap_s
            trk.update(NONE)
        ids = set()
        for _ in range(3):
            ids |= set(trk.update(det(100, 100, 200, 180))[:, 4].astype(int).tolist())
        return ids

    for fps in (12, 30):
        assert reappears_with(fps, 0.9) == {1}, fps  # still lost: re-activated, same id
        assert reappears_with(fps, 1.25) == {2}, fps  # removed after 1 s: a new track


def test_unconfirmed_tracks_need_a_second_match_and_ids_are_contiguous():
    trk = KalmanTracker(frame_rate=12)
    trk.update(NONE)  # frame 1 without detections
    assert len(trk.update(det(0, 0, 50, 50))) == 0  # frame 2: unconfirmed
    assert len(trk.update(det(500, 500, 550, 550))) == 0  # the first is dropped unconfirmed, a second is born
    assert trk.update(det(500, 500, 550, 550))[:, 4].tolist() == [1]  # confirmed: the first id is 1
    # low-score detections never start tracks but continue them
    trk2 = KalmanTracker(frame_rate=12)
    assert len(trk2.update(det(0, 0, 50, 50, score=0.65))) == 0  # high (>= 0.6) but below new_track_thresh 0.7
    assert len(trk2.update(det(0, 0, 50, 50, score=0.3))) == 0
    trk2.update(det(0, 0, 50, 50, score=0.95))  # new, unconfirmed
    assert len(trk2.update(det(0, 0, 50, 50, score=0.3))) == 0  # unconfirmed tracks only take high detections
    trk2.update(det(0, 0, 50, 50, score=0.95))  # new again
    assert trk2.update(det(0, 0, 50, 50, score=0.9))[:, 4].tolist() == [1]  # confirmed
    assert trk2.update(det(0, 0, 50, 50, score=0.3))[:, 4].tolist() == [1]  # match 2 with a low detection


# ------------------------------------------------------------------------------------- shared association
def _noisy_frames(export_dir):
    seq = sorted(export_dir.glob("*/*_CAM_FRONT"))[0]
    dets = load_detections("noisy", seq, seed=1)
    return [dets[f] for f in sorted(dets)]


def _run(trk, frames):
    return [trk.update(d) for d in frames]


class _SameMotion:
    """Identical motion model for both trackers: the track stays where it was last seen."""

    def init_motion(self, track):
        track.motion = track.box.copy()

    def predict(self, tracks):
        return np.array([t.motion for t in tracks]).reshape(-1, 4)

    def correct(self, track, box):
        track.motion = np.asarray(box, dtype=np.float64).copy()


class StubKalman(_SameMotion, KalmanTracker):
    pass


class StubSSM(_SameMotion, TrackSSMTracker):
    pass


def test_trackers_share_association_and_differ_only_by_motion(export_dir):
    for name in ("update", "step", "prediction_pool", "output", "_remove_duplicates"):
        assert getattr(KalmanTracker, name) is getattr(BaseTracker, name)
        assert getattr(TrackSSMTracker, name) is getattr(BaseTracker, name)
    frames = _noisy_frames(export_dir)
    a = _run(StubKalman(frame_rate=12), frames)
    b = _run(StubSSM(LastBoxModel(), frame_rate=12, image_size=(1600, 900)), frames)
    assert sum(len(x) for x in a) > 100
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # with the real motion models the outputs differ
    c = _run(KalmanTracker(frame_rate=12), frames)
    d = _run(TrackSSMTracker(LastBoxModel(), frame_rate=12, image_size=(1600, 900)), frames)
    assert any(len(x) != len(y) or not np.array_equal(x, y) for x, y in zip(c, d))


def test_trackssm_history_rows():
    model = LastBoxModel()
    trk = TrackSSMTracker(model, frame_rate=12, image_size=(1000, 500))
    trk.update(det(100, 100, 200, 200))  # frame 1: confirmed at once, history [(box, 0)]
    track = trk.tracked[0]
    assert len(track.motion) == 1
    np.testing.assert_allclose(track.motion[0], [150, 150, 100, 100, 0, 0, 0, 0])
    cond = trk.build_conditions([track])
    assert cond.shape == (1, 5, 8)
    np.testing.assert_allclose(cond[0], np.tile([0.15, 0.3, 0.1, 0.2, 0, 0, 0, 0], (5, 1)), atol=1e-7)
    trk.update(det(110, 100, 210, 200))  # predicted (150,...) then overwritten by the detection
    assert len(track.motion) == 2
    np.testing.assert_allclose(track.motion[-1], [160, 150, 100, 100, 10, 0, 0, 0])
    cond = trk.build_conditions([track])  # padded at the END with the last row
    np.testing.assert_allclose(cond[0, 1:] * np.array([1000, 500] * 4), np.tile(track.motion[-1], (4, 1)), rtol=1e-6)
    out = trk.update(NONE)  # predicted 170 (constant velocity) and lost
    assert len(out) == 0
    np.testing.assert_allclose(track.motion[-1], [170, 150, 100, 100, 10, 0, 0, 0], atol=1e-3)
    for _ in range(5):
        trk.update(NONE)
    assert len(track.motion) == 5  # deque of the last 5 rows
    assert model.calls == [1, 1, 1, 1, 1, 1, 1]


def _gt_ids_per_frame(seq_dir):
    gt = np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    order = np.argsort(gt[:, 0], kind="stable")
    gt = gt[order]
    return gt, {int(f): gt[gt[:, 0] == f, 1].astype(int) for f in np.unique(gt[:, 0])}


@pytest.mark.parametrize("kind", ["kalman", "trackssm-cv"])
def test_gt_detections_give_one_track_per_gt_track(export_dir, kind):
    """Exact detections: a GT track seen without gaps keeps one id; no output id covers two GT tracks."""
    seq_dirs = sorted(export_dir.glob("*/*_CAM_FRONT")) + sorted(export_dir.glob("*/*_CAM_BACK"))
    n_gt, n_single, n_ids, n_pure = 0, 0, 0, 0
    for seq in seq_dirs:
        dets = load_detections("gt", seq)
        gt, gt_ids = _gt_ids_per_frame(seq)
        trk = (KalmanTracker(frame_rate=12) if kind == "kalman"
               else TrackSSMTracker(LastBoxModel(), frame_rate=12, image_size=(1600, 900)))
        ids: dict[int, list[int]] = {}
        for f in sorted(dets):
            for row in trk.update(dets[f]):
                ids.setdefault(int(gt_ids[f][int(row[7])]), []).append(int(row[4]))
        for g in np.unique(gt[:, 1]).astype(int):
            frames = np.sort(gt[gt[:, 1] == g, 0])
            if len(frames) < 5 or np.diff(frames).max() > 2:  # short, or gaps in the annotation
                continue
            n_gt += 1
            n_single += len(set(ids.get(g, []))) == 1
        owner: dict[int, set] = {}
        for g, lst in ids.items():
            for i in lst:
                owner.setdefault(i, set()).add(g)
        n_ids += len(owner)
        n_pure += sum(len(v) == 1 for v in owner.values())
    assert n_gt > 20
    assert n_single / n_gt >= 0.85, (n_single, n_gt)
    assert n_pure / n_ids >= 0.9, (n_pure, n_ids)


# -------------------------------------------------------------------------------------------- multi-camera
def test_multicamera_batches_one_model_call_per_timestamp(export_dir):
    seqs = sorted(export_dir.glob("mini_train/*"))
    assert len(seqs) == 6
    dets = {s.name: load_detections("noisy", s, seed=2) for s in seqs}
    shared = LastBoxModel()
    multi = MultiCameraTracker({n: TrackSSMTracker(shared, frame_rate=12, image_size=(1600, 900)) for n in dets})
    solo = {n: TrackSSMTracker(LastBoxModel(), frame_rate=12, image_size=(1600, 900)) for n in dets}
    n_steps = max(max(d) for d in dets.values())
    steps_with_tracks = 0
    for f in range(1, n_steps + 1):
        step = {n: d[f] for n, d in dets.items() if f in d}
        calls_before = len(shared.calls)
        out = multi.update(step)
        pool = sum(len(t.prediction_pool()) for t in multi.trackers.values())
        assert len(shared.calls) - calls_before <= 1  # at most ONE model call for all cameras
        for n, d in step.items():
            np.testing.assert_allclose(out[n], solo[n].update(d), rtol=1e-5, atol=1e-3)
        steps_with_tracks += pool > 0
    assert len(shared.calls) >= n_steps - 2
    assert max(shared.calls) > max(len(t.prediction_pool()) for t in multi.trackers.values())


def test_boxmot_missing_gives_install_hint(no_boxmot):
    with pytest.raises(TrackerUnavailableError, match=r"pip install boxmot==19\.0\.0"):
        BoxMOTTracker("bytetrack", frame_rate=12)
    with pytest.raises(TrackerUnavailableError, match="unknown BoxMOT tracker"):
        BoxMOTTracker("sort", frame_rate=12)


def _two_movers(n_frames: int = 24) -> list[np.ndarray]:
    """A car moving right and a pedestrian moving left, crossing paths (same place at frame ~12)."""
    frames = []
    for f in range(n_frames):
        car = [100 + 20 * f, 300, 260 + 20 * f, 400, 0.9, CAR]
        ped = [600 - 15 * f, 290, 640 - 15 * f, 410, 0.85, PED]
        frames.append(np.array([car, ped], dtype=np.float64))
    return frames


@pytest.mark.parametrize("name", ["bytetrack", "botsort", "ocsort"])
def test_boxmot_trackers_keep_identities(name, needs_boxmot):
    trk = BoxMOTTracker(name, frame_rate=12, image_size=(1600, 900))
    ids_by_class: dict[int, set[int]] = {CAR: set(), PED: set()}
    seen = 0
    for dets in _two_movers():
        out = trk.update(dets)
        assert out.shape[1] == 8
        for row in out:
            cls = int(row[6])
            ids_by_class[cls].add(int(row[4]))
            # the output box (BoxMOT may report its filtered state) is near the detection of the same class
            np.testing.assert_allclose(row[:4], dets[dets[:, 5] == cls][0, :4], atol=25)
        seen += len(out)
    assert seen >= 2 * 24 - 2 * 3  # both objects tracked after at most min_hits frames
    # one identity per object, even where the two boxes overlap (class-aware matching)
    assert len(ids_by_class[CAR]) == 1 and len(ids_by_class[PED]) == 1
    assert ids_by_class[CAR] != ids_by_class[PED]


def test_boxmot_ids_shared_by_two_classes_become_two_tracks():
    """BoxMOT 19's per-class trackers may report one id in two classes: the adapter makes them two tracks, so that
    no result file has an id that changes class."""
    class SameIdTwice:  # BoxMOT's output rows: x1, y1, x2, y2, id, conf, cls, det_ind
        def update(self, dets, img):
            return np.array([[0, 0, 10, 10, 7, 0.9, CAR, 0], [50, 50, 60, 80, 7, 0.9, PED, 1]])

    trk = object.__new__(BoxMOTTracker)
    trk.tracker, trk._img, trk._ids = SameIdTwice(), None, {}
    first, second = trk.update(np.zeros((2, 6))), trk.update(np.zeros((2, 6)))
    assert first[:, 4].tolist() == [1, 2] and second[:, 4].tolist() == [1, 2]
    assert first[:, [0, 1, 2, 3, 5, 6, 7]].tolist() == [[0, 0, 10, 10, 0.9, CAR, 0], [50, 50, 60, 80, 0.9, PED, 1]]


def test_boxmot_through_run_tracking_and_evaluate(export_dir, tmp_path, needs_boxmot):
    from trackssm_lib.evaluation import evaluate
    from trackssm_lib.tracking import run_tracking

    out = tmp_path / "ocsort"
    summary = run_tracking(export_dir, "mini_val", tracker="boxmot:ocsort", detections="gt", out=out, progress=False)
    assert summary["sequences"] == 6 and summary["tracker"] == "boxmot:ocsort"
    metrics = evaluate(export_dir / "mini_val", out, tmp_path / "eval")
    hota = metrics["combined_det_avg"]["HOTA"]
    assert 60 < hota <= 100  # exact boxes: a sane Kalman tracker scores high, but not a copy of the truth


# -------------------------------------------------------------------------------------------- run_tracking
def test_run_tracking_output_files(export_dir, tmp_path):
    from trackssm_lib.tracking import run_tracking

    out = tmp_path / "res"
    summary = run_tracking(export_dir, "mini_val", tracker="kalman", detections="gt", out=out, progress=False)
    seqs = sorted(p.name for p in (export_dir / "mini_val").iterdir() if p.is_dir())
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{s}.txt" for s in seqs]  # one file per sequence, no temporary files left
    assert summary["sequences"] == len(seqs) and summary["boxes"] > 0
    n_rows = n_gt = 0
    for s in seqs:
        lines = (out / f"{s}.txt").read_text().splitlines()
        rows = np.array([[float(v) for v in ln.split(",")] for ln in lines])
        assert rows.shape[1] == 10
        assert (rows[:, 8:] == -1).all()
        ids = rows[:, 1].astype(int)
        assert ids.min() == 1 and ids.max() == len(np.unique(ids))  # small, contiguous, 1-based
        assert (rows[:, 0] == rows[:, 0].astype(int)).all() and rows[:, 0].min() >= 1
        assert (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all()
        assert set(rows[:, 7].astype(int)) <= set(range(7))
        assert not any(np.unique(rows[rows[:, 0] == f, 1], return_counts=True)[1].max() > 1
                       for f in np.unique(rows[:, 0]))
        n_rows += len(rows)
        n_gt += len(np.loadtxt(export_dir / "mini_val" / s / "gt" / "gt.txt", delimiter=",", ndmin=2))
    assert n_rows >= 0.75 * n_gt  # gt detections: most boxes are tracked (not the unconfirmed first frames)


def test_run_tracking_trackssm_and_errors(export_dir, tmp_path, monkeypatch, request):
    import trackssm_lib.tracking as tracking
    from trackssm_lib.tracking import TrackingError, UnknownTrackerError, run_tracking

    with pytest.warns(UserWarning, match="random weights"):
        model = tracking.load_model(None)
    assert type(model).__name__ == "TrackSSM"
    # the trackssm path with a fast stub model (random weights lose every track: slow and meaningless)
    stub = LastBoxModel()
    monkeypatch.setattr(tracking, "load_model", lambda *a, **k: stub)
    summary = run_tracking(export_dir, "mini_val", tracker="trackssm", detections="noisy", out=tmp_path / "a",
                           progress=False)
    assert summary["sequences"] == 6 and summary["boxes"] > 0
    frames = max(int(ln.split("=")[1]) for p in (export_dir / "mini_val").glob("*/seqinfo.ini")
                 for ln in p.read_text().splitlines() if ln.startswith("seqLength"))
    assert len(stub.calls) <= frames  # one batched call per frame index for the 6 cameras
    monkeypatch.undo()
    with pytest.raises(UnknownTrackerError, match="unknown tracker"):
        run_tracking(export_dir, "mini_val", tracker="sort", out=tmp_path / "b", progress=False)
    with pytest.raises(TrackingError, match="nope"):
        run_tracking(export_dir, "nope", tracker="kalman", out=tmp_path / "b", progress=False)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        run_tracking(export_dir, "mini_val", tracker="trackssm", checkpoint=bad, out=tmp_path / "b", progress=False)
    with pytest.raises(TrackingError, match="not found"):
        run_tracking(export_dir, "mini_val", tracker="trackssm", checkpoint=tmp_path / "missing.pt",
                     out=tmp_path / "b", progress=False)
    with pytest.raises(TrackingError, match="detections"):
        run_tracking(export_dir, "mini_val", tracker="kalman", detections="yolo", out=tmp_path / "b", progress=False)
    request.getfixturevalue("no_boxmot")
    with pytest.raises(TrackerUnavailableError, match="pip install boxmot"):
        run_tracking(export_dir, "mini_val", tracker="boxmot:bytetrack", out=tmp_path / "b", progress=False)


def test_track_parser_hook(export_dir, tmp_path):
    import argparse

    from trackssm_lib.tracking import add_track_parser

    parser = argparse.ArgumentParser()
    add_track_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["track", "--data", str(export_dir), "--split", "mini_val", "--tracker", "kalman",
                              "--detections", "noisy", "--out", str(tmp_path / "r"), "--quiet"])
    assert args.func(args) == 0
    assert len(list((tmp_path / "r").glob("*.txt"))) == 6


# ------------------------------------------------------------------------------------ detections outside a sequence
def _seq_length(seq_dir: Path) -> int:
    return int(next(ln for ln in (seq_dir / "seqinfo.ini").read_text().splitlines()
                    if ln.startswith("seqLength=")).split("=")[1])


def _gt_detection_folder(seq_dirs: list[Path], dest: Path) -> Path:
    """``dest/<sequence>.txt`` with every GT box as a detection ``frame,-1,x,y,w,h,1,class``."""
    dest.mkdir(parents=True, exist_ok=True)
    for d in seq_dirs:
        gt = np.loadtxt(d / "gt" / "gt.txt", delimiter=",", ndmin=2)
        rows = [f"{int(r[0])},-1,{r[2]!r},{r[3]!r},{r[4]!r},{r[5]!r},1,{int(r[7])}\n" for r in gt]
        (dest / f"{d.name}.txt").write_text("".join(rows))
    return dest


def test_clip_to_sequence_counts_rows_outside():
    from trackssm_lib.tracking import clip_to_sequence

    dets = {0: det(1, 1, 5, 5), 1: np.concatenate([det(1, 1, 5, 5), det(9, 9, 20, 20)]), 4: det(2, 2, 6, 6),
            5: np.concatenate([det(1, 1, 5, 5)] * 3), 6: NONE}
    kept, dropped = clip_to_sequence(dets, 4)
    assert sorted(kept) == [1, 4] and len(kept[1]) == 2
    assert dropped == {"rows": 4, "first_frame": 0, "last_frame": 5}
    kept, dropped = clip_to_sequence({1: det(1, 1, 5, 5), 3: NONE}, 2)
    assert sorted(kept) == [1] and dropped is None  # an empty frame outside: dropped, not counted
    assert clip_to_sequence(dets, None) == (dets, None)  # no seqLength: nothing dropped


def test_detections_beyond_seq_length_are_clipped_and_counted(export_split, tmp_path, capsys):
    from trackssm_lib.evaluation import evaluate
    from trackssm_lib.tracking import run_tracking

    seq_dirs = sorted(d for d in export_split.iterdir() if (d / "seqinfo.ini").is_file())
    dets = _gt_detection_folder(seq_dirs, tmp_path / "dets")
    run = dict(tracker="kalman", detections=dets, progress=False, threads=1)
    valid = run_tracking(export_split.parent, export_split.name, out=tmp_path / "valid", **run)
    assert valid["clipped_detections"] == {} and "warning" not in capsys.readouterr().err
    # three rows after the sequence's end, continuing its last box: tracked (and written) by the old code
    seq, length = seq_dirs[-1], _seq_length(seq_dirs[-1])
    last = (dets / f"{seq.name}.txt").read_text().splitlines()[-1].split(",", 1)[1]
    with (dets / f"{seq.name}.txt").open("a") as fh:
        fh.write("".join(f"{length + k},{last}\n" for k in (1, 2, 3)))
    clipped = run_tracking(export_split.parent, export_split.name, out=tmp_path / "clipped", **run)
    assert clipped["clipped_detections"] == {seq.name: {"rows": 3, "first_frame": length + 1,
                                                        "last_frame": length + 3}}
    err = capsys.readouterr().err
    assert f"warning: {seq.name}: 3 detection row(s) at frames {length + 1}..{length + 3}" in err
    assert f"seqLength={length}" in err and err.count("warning") == 1
    for d in seq_dirs:  # the results are exactly those of the valid detections
        name = f"{d.name}.txt"
        assert (tmp_path / "clipped" / name).read_bytes() == (tmp_path / "valid" / name).read_bytes()
    evaluate(export_split, tmp_path / "clipped", None, print_summary=False)  # no frame beyond seqLength


def test_bad_detection_file_stops_the_run_before_any_result(export_split, tmp_path, capsys):
    """A malformed detection file of the second scene: an error naming it and its line, exit code 2 on the command
    line, and no result file at all (the old code had written the first scene's)."""
    from trackssm_lib import cli
    from trackssm_lib.detections import DetectionError
    from trackssm_lib.tracking import run_tracking

    both = tmp_path / "data" / "both"  # a split of two scenes: both splits of the export
    both.mkdir(parents=True)
    for d in sorted(export_split.parent.glob("*/*/seqinfo.ini")):
        (both / d.parent.name).symlink_to(d.parent)
    seq_dirs = sorted(both.iterdir())
    assert len({d.name.split("_")[0] for d in seq_dirs}) == 2
    dets = _gt_detection_folder(seq_dirs, tmp_path / "dets")
    bad = dets / f"{seq_dirs[-1].name}.txt"
    lines = bad.read_text().splitlines()
    lines[2] = "7,-1,10,20"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "res"
    with pytest.raises(DetectionError, match=rf"{bad.name}:3\b"):
        run_tracking(tmp_path / "data", "both", tracker="kalman", detections=dets, out=out, progress=False, threads=1)
    assert not out.exists() or not list(out.iterdir())
    code = cli.main(["track", "--data", str(tmp_path / "data"), "--split", "both", "--tracker", "kalman",
                     "--detections", str(dets), "--out", str(out), "--quiet", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and f"{bad.name}:3" in err and "Traceback" not in err
    assert not out.exists() or not list(out.iterdir())
