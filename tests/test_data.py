"""Training data: windows, official per-track samples, gaps, augmentation, MOT17 loader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trackssm_lib.data import (
    PEDESTRIAN_CLASS_ID,
    SampleDataset,
    SequenceData,
    WindowDataset,
    build_condition,
    collate_windows,
    default_splits,
    extract_track_samples,
    load_mot_samples,
    load_mot_sequence,
    load_split,
    sequences_to_samples,
    split_sequence_dirs,
    windows_to_samples,
)

MOT17 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mot17-train-gt"


def box_of(track: int, frame: int) -> list[float]:
    """A distinct, recognisable box per (track, frame)."""
    return [0.1 + 0.01 * frame, 0.2 + 0.1 * track, 0.05 + 0.001 * frame, 0.1]


def toy_sequence(length: int = 40) -> SequenceData:
    """Track 1: every frame. Track 2: frames 1..40 except 15 (a gap). Track 3: frames 25..40 only."""
    rows = []
    for f in range(1, length + 1):
        rows.append((f, 1, 0))
        if f != 15:
            rows.append((f, 2, 4))
        if f >= 25:
            rows.append((f, 3, 1))
    rows.reverse()  # loaders must not rely on the order of the file
    frames = np.array([r[0] for r in rows])
    tids = np.array([r[1] for r in rows])
    cls = np.array([r[2] for r in rows])
    boxes = np.array([box_of(t, f) for f, t, _ in rows], dtype=np.float32)
    return SequenceData("toy", 1600, 900, length, frames, tids, boxes, cls)


@pytest.fixture(scope="module")
def export_root(tmp_path_factory) -> Path:
    from trackssm_lib.export import prepare
    from trackssm_lib.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("data")
    generate_dataset(tmp / "nusc", "v1.0-mini", n_scenes=2, seed=0, images=False, progress=False)
    prepare(tmp / "nusc", "v1.0-mini", tmp / "export", cameras=["CAM_FRONT", "CAM_BACK"], progress=False)
    return tmp / "export"


# ----------------------------------------------------------------------------------------------- windows
def test_window_target_never_in_condition():
    seq = toy_sequence()
    ds = WindowDataset([seq], sequence_length=20, num_queries=300)
    assert len(ds) > 0
    for i in range(len(ds)):
        item = ds[i]
        start = item["start_frame"]
        cur = start + 20
        ids = item["track_ids"].max(axis=0)  # column -> track id (padding is -1)
        for n, tid in enumerate(ids):
            # history rows are exactly the frames start .. cur-1
            for t in range(20):
                if not item["padding_mask"][t, n]:
                    assert np.allclose(item["condition"][t, n], box_of(tid, start + t))
            if not item["cur_mask"][n]:
                assert np.allclose(item["cur_bbox"][n], box_of(tid, cur))
                # the target box appears nowhere in the model input
                assert not (np.abs(item["condition"][:, n] - item["cur_bbox"][n]).sum(-1) < 1e-7).any()
    batch = collate_windows([ds[i] for i in range(len(ds))])
    samples = windows_to_samples(batch)
    cond, target = samples["condition"], samples["target"]
    assert cond.shape[1:] == (5, 8) and target.shape[1:] == (4,)
    # the last condition row is the frame right before the target: exactly one frame of motion away
    assert torch.allclose(target[:, 0] - cond[:, -1, 0], torch.full_like(target[:, 0], 0.01), atol=1e-6)


def test_window_padding_masked_and_collated():
    seq = toy_sequence()
    ds = WindowDataset([seq], sequence_length=20, num_queries=300)
    i = int(np.nonzero(ds.start_frames == 1)[0][0])  # window frames 1..20, target 21
    item = ds[i]
    assert item["condition"].shape[0] == 20
    ids = list(item["track_ids"].max(axis=0))
    assert 3 not in ids  # track 3 starts at 25: not part of this window
    col2 = ids.index(2)
    assert item["padding_mask"][15 - 1, col2] and (item["condition"][15 - 1, col2] == 0).all()
    assert item["class_ids"][15 - 1, col2] == -1 and item["track_ids"][15 - 1, col2] == -1
    assert not item["padding_mask"][:, ids.index(1)].any()
    early = ds[int(np.nonzero(ds.start_frames == -13)[0][0])]  # target frame 7: frames <= 0 are padding
    assert early["padding_mask"][:14].all() and not early["padding_mask"][14:, 0].any()
    batch = collate_windows([item, early])
    assert batch["condition"].shape == (2, 20, 2, 4) and batch["padding_mask"].shape == (2, 20, 2)
    assert batch["track_ids"].shape == (2, 20, 2) and batch["class_ids"].shape == (2, 20, 2)
    assert batch["cur_bbox"].shape == (2, 2, 4)
    assert batch["seq_names"] == ["toy", "toy"] and batch["start_frames"].tolist() == [1, -13]
    assert (batch["condition"][batch["padding_mask"]] == 0).all()


def test_num_queries_caps_tracks():
    ds = WindowDataset([toy_sequence()], sequence_length=20, num_queries=1)
    for i in range(len(ds)):
        item = ds[i]
        assert item["condition"].shape[1] <= 1
        assert not item["cur_mask"].all()  # the kept track is one with a target


def test_gaps_are_not_bridged():
    seq = toy_sequence()
    boxes7, cls = extract_track_samples(seq.frames, seq.track_ids, seq.boxes, seq.class_ids)
    # track 1: targets 7..40 (34); track 2: 7..14 and 22..40 (8 + 19); track 3: 31..40 (10)
    assert len(boxes7) == 34 + 27 + 10
    frames_of_target = np.round((boxes7[:, -1, 0] - 0.1) / 0.01).astype(int)
    track = np.round((boxes7[:, -1, 1] - 0.2) / 0.1).astype(int)
    t2 = sorted(frames_of_target[track == 2])
    assert t2 == list(range(7, 15)) + list(range(22, 41))
    assert set(cls[track == 2]) == {4} and set(cls[track == 3]) == {1}
    # every sample is 7 consecutive frames of one track
    steps = np.diff(boxes7[:, :, 0], axis=1)
    assert np.allclose(steps, 0.01, atol=1e-6)
    # the window path gives exactly the same samples
    ds = WindowDataset([seq], sequence_length=20)
    s = windows_to_samples(collate_windows([ds[i] for i in range(len(ds))]))
    assert len(s["target"]) == len(boxes7)


def test_build_condition_official_layout():
    boxes7 = np.arange(7 * 4, dtype=np.float32).reshape(1, 7, 4) ** 1.5
    cond, target = build_condition(boxes7)
    assert cond.shape == (1, 5, 8)
    assert np.array_equal(cond[0, :, :4], boxes7[0, 1:6])
    assert np.allclose(cond[0, :, 4:], boxes7[0, 1:6] - boxes7[0, 0:5])
    assert np.array_equal(target[0], boxes7[0, 6])
    tcond, ttarget = build_condition(torch.from_numpy(boxes7))
    assert np.allclose(tcond.numpy(), cond) and np.allclose(ttarget.numpy(), target)


def test_export_windows_equal_all_samples(export_root):
    train, val = default_splits(export_root)
    assert (train, val) == ("mini_train", "mini_val")
    seqs = load_split(export_root, train)
    assert all(s.width == 1600 and s.height == 900 for s in seqs)
    ds = WindowDataset(seqs, sequence_length=20, num_queries=300)
    batch = collate_windows([ds[i] for i in range(len(ds))])
    s = windows_to_samples(batch)
    boxes7, cls = sequences_to_samples(seqs)
    assert len(s["target"]) == len(boxes7) > 0
    assert sorted(s["class_ids"].tolist()) == sorted(cls.tolist())
    assert ((s["condition"][..., :4] >= 0) & (s["condition"][..., :4] <= 1)).all()
    assert batch["condition"].shape[:2] == (len(ds), 20) and batch["condition"].shape[2] <= 300


def test_missing_data_folder_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        split_sequence_dirs(tmp_path / "nope", "mini_train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        default_splits(tmp_path / "nope")
    (tmp_path / "seqmaps").mkdir()
    with pytest.raises(FileNotFoundError, match="split 'train' not found"):
        split_sequence_dirs(tmp_path, "train")


# ------------------------------------------------------------------------------------------ augmentation
def test_augmentation_only_in_training():
    seq = toy_sequence()
    val = WindowDataset([seq], sequence_length=20, train=False)
    train = WindowDataset([seq], sequence_length=20, train=True, seed=3)
    raw = [val[i] for i in range(len(val))]
    changed = 0
    for i in range(len(val)):
        a, b = raw[i], train[i]
        np.testing.assert_array_equal(val[i]["condition"], a["condition"])  # validation: never altered
        assert np.array_equal(a["padding_mask"], b["padding_mask"])
        changed += not np.array_equal(a["condition"], b["condition"])
        # the target is flipped at most, never jittered
        flipped = np.allclose(b["cur_bbox"][..., 0], np.where(a["cur_mask"], 0, 1 - a["cur_bbox"][..., 0]))
        assert flipped or np.array_equal(a["cur_bbox"], b["cur_bbox"])
        assert (b["condition"] >= 0).all() and (b["condition"] <= 1).all()
        assert (b["condition"][b["padding_mask"]] == 0).all()
    assert changed == len(val)
    # seeded: same seed and epoch -> same draws; a new epoch -> new draws
    again = WindowDataset([seq], sequence_length=20, train=True, seed=3)
    assert all(np.array_equal(train[i]["condition"], again[i]["condition"]) for i in range(len(val)))
    again.set_epoch(1)
    assert not all(np.array_equal(train[i]["condition"], again[i]["condition"]) for i in range(len(val)))


def test_flip_negates_x_and_jitter_is_bounded():
    seq = toy_sequence()
    boxes7, cls = extract_track_samples(seq.frames, seq.track_ids, seq.boxes, seq.class_ids)
    idx = list(range(len(boxes7)))
    plain = SampleDataset(boxes7, cls, train=False)[idx]
    flip = SampleDataset(boxes7, cls, train=True, flip_prob=1.0, jitter=0.0)[idx]
    assert torch.allclose(flip["condition"][..., 0], 1 - plain["condition"][..., 0])
    assert torch.allclose(flip["condition"][..., 4], -plain["condition"][..., 4], atol=1e-6)
    assert torch.equal(flip["condition"][..., 1:4], plain["condition"][..., 1:4])
    assert torch.allclose(flip["target"][:, 0], 1 - plain["target"][:, 0])
    jit = SampleDataset(boxes7, cls, train=True, flip_prob=0.0, jitter=0.05)[idx]
    assert torch.equal(jit["target"], plain["target"])  # the target is never jittered
    rel = (jit["condition"][..., 2:4] / plain["condition"][..., 2:4] - 1).abs()
    assert rel.max() <= 0.05 + 1e-6 and rel.max() > 0.01
    shift = (jit["condition"][..., :2] - plain["condition"][..., :2]).abs() / plain["condition"][..., 2:4]
    assert shift.max() <= 0.05 + 1e-5
    none = SampleDataset(boxes7, cls, train=True, flip_prob=0.5, jitter=0.05)
    n_flipped = (none[idx]["target"][:, 0] != plain["target"][:, 0]).sum().item()
    assert 0.2 * len(idx) < n_flipped < 0.8 * len(idx)


def test_sample_extraction_for_thousands_of_shuffled_sequences():
    rng = np.random.default_rng(0)
    n_seq, n_tracks, length = 3000, 20, 40  # 2.4 M rows
    seq = np.repeat(np.arange(n_seq), n_tracks * length)
    tid = np.tile(np.repeat(np.arange(1, n_tracks + 1), length), n_seq)
    frames = np.tile(np.arange(1, length + 1), n_seq * n_tracks)
    keep = rng.random(len(frames)) > 0.02  # random gaps
    perm = rng.permutation(int(keep.sum()))
    boxes = rng.random((int(keep.sum()), 4)).astype(np.float32)
    boxes7, cls = extract_track_samples(frames[keep][perm], tid[keep][perm], boxes, np.zeros(len(perm), int),
                                        seq[keep][perm])
    assert 0 < len(boxes7) < n_seq * n_tracks * (length - 6)


# ------------------------------------------------------------------------------------------------ MOT17
@pytest.fixture(scope="module")
def mot17() -> Path:
    if not MOT17.is_dir():
        pytest.skip(f"MOT17 ground truth not found at {MOT17} (it lives in ../shared/data beside the checkout)")
    return MOT17


def test_mot17_loader_reads_real_gt(mot17):
    seq = load_mot_sequence(mot17 / "MOT17-02-FRCNN")
    gt = np.loadtxt(mot17 / "MOT17-02-FRCNN" / "gt" / "gt.txt", delimiter=",")
    peds = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    assert len(seq.frames) == len(peds) < len(gt)  # static persons, vehicles, distractors... dropped
    assert (seq.width, seq.height) == (1920, 1080)
    assert set(seq.class_ids.tolist()) == {PEDESTRIAN_CLASS_ID}
    row = peds[0]
    i = np.nonzero((seq.frames == row[0]) & (seq.track_ids == row[1]))[0][0]
    expected = [(row[2] + row[4] / 2) / 1920, (row[3] + row[5] / 2) / 1080, row[4] / 1920, row[5] / 1080]
    assert np.allclose(seq.boxes[i], expected, atol=1e-6)

    boxes7, cls, names = load_mot_samples(mot17)
    assert names == sorted(p.name for p in mot17.iterdir() if p.name.startswith("MOT17-"))
    assert len(boxes7) > 100_000 and set(cls.tolist()) == {PEDESTRIAN_CLASS_ID}
    assert np.isfinite(boxes7).all()
    # one frame of MOT17 motion is small: consecutive boxes are close
    assert np.median(np.abs(np.diff(boxes7[:, :, 0], axis=1))) < 0.01
    sub, _, _ = load_mot_samples(mot17, frame_step=3, sequences=["MOT17-02-FRCNN"])
    assert 0 < len(sub) < len(boxes7) / 3


def test_young_track_condition_matches_the_tracker():
    """A history cut to m rows is what TrackSSMTracker builds for a young track born after the sequence's first
    frame (m + 1 detections: the second overwrites the unconfirmed birth row): the newest m rows with their real
    displacements, padded at the end with the newest; m >= H changes nothing."""
    from trackssm_lib.data import young_track_condition
    from trackssm_lib.trackers import TrackSSMTracker

    class Model:  # never called: the test drives the track's rows itself
        pass

    boxes = np.array([[100 + 7 * k + k * k, 200 + 3 * k, 40 + k, 80 + 2 * k] for k in range(4)], dtype=np.float64)
    xyxy = np.c_[boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2]
    trk = TrackSSMTracker(Model(), frame_rate=12, image_size=(1000, 500), new_track_thresh=0.7)
    track = type("T", (), {"box": xyxy[0], "extra": {}, "predicted": False})()
    trk.init_motion(track)  # born (unconfirmed) on boxes[0]
    trk.correct(track, xyxy[1])  # confirmed on boxes[1] without a prediction: the birth row is overwritten
    conditions = [trk.build_conditions([track])[0]]
    for k in (2, 3):  # each frame: a prediction is appended, then the matched detection overwrites it
        trk.apply_predictions([track], np.array([[0.3, 0.3, 0.1, 0.1]]))
        trk.correct(track, xyxy[k])
        conditions.append(trk.build_conditions([track])[0])
    assert len(track.motion) == 3
    norm = np.array([1000, 500, 1000, 500], dtype=np.float64)
    before = boxes[:1] - np.array([[5, 0, 0, 0], [4, 1, 0, 0], [3, 0, 0, 0], [1, 1, 0, 0]])  # older, unseen boxes

    def sample(last: int) -> torch.Tensor:  # the training condition whose newest box is boxes[last]
        six = np.r_[before, boxes[:last + 1]][-6:]
        return build_condition(torch.from_numpy(np.r_[six / norm, [[0.5, 0.5, 0.1, 0.1]]][None]).float())[0]

    for m, want in zip((1, 2, 3), conditions):  # m rows after m + 1 detections
        got = young_track_condition(sample(m), torch.tensor([m]))[0].numpy()
        np.testing.assert_allclose(got, want, atol=1e-6)
    cond = sample(3)
    assert conditions[0][0, 4] == pytest.approx((boxes[1, 0] - boxes[0, 0]) / 1000)  # a real displacement
    assert torch.equal(young_track_condition(cond, torch.tensor([5])), cond)


def test_short_history_augmentation_is_seeded_and_training_only():
    seq = toy_sequence()
    kw = dict(sequence_length=12, flip_prob=0.0, jitter=0.0, seed=3)
    plain = WindowDataset([seq], train=True, **kw)
    young = WindowDataset([seq], train=True, short_history_prob=1.0, **kw)
    items = [young[i] for i in range(len(young))]
    assert all(((it["rows_kept"] >= 1) & (it["rows_kept"] <= 4)).all() for it in items)
    batch = collate_windows(items)
    again = collate_windows([young[i] for i in range(len(young))])
    assert torch.equal(batch["rows_kept"], again["rows_kept"])
    base = collate_windows([plain[i] for i in range(len(plain))])
    s, s0 = windows_to_samples(batch), windows_to_samples(base)
    assert torch.equal(s["target"], s0["target"]) and not torch.equal(s["condition"], s0["condition"])
    val = WindowDataset([seq], train=False, short_history_prob=1.0, **kw)
    assert torch.equal(windows_to_samples(collate_windows([val[i] for i in range(len(val))]))["condition"],
                       s0["condition"])
    with pytest.raises(ValueError, match="short_history_prob must lie in"):
        WindowDataset([seq], short_history_prob=1.5)
