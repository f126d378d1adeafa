"""The constant-velocity Kalman filter (``trackers.kalman_tracker``) against independent references.

Two references, on the same measurements, means AND covariances, tolerance 1e-9 relative:

* a textbook filter written out below from the documented parametrisation (BoT-SORT's ``KalmanFilterXYWH``):
  state (cx, cy, w, h, vcx, vcy, vw, vh), one step per frame;
  initial std   (2 wp w, 2 wp h, 2 wp w, 2 wp h, 10 wv w, 10 wv h, 10 wv w, 10 wv h),
  process std   (wp w, wp h, wp w, wp h, wv w, wv h, wv w, wv h) from the mean before the step,
  measurement std (wp w, wp h, wp w, wp h) from the predicted mean, with wp = 1/20, wv = 1/160;
  x' = F x, P' = F P F^T + Q; S = H P H^T + R, K = P H^T S^-1, x+ = x + K (z - H x), P+ = (I - K H) P.
  It also covers what BoxMOT's filter does not: other noise weights, and the tracker's own steps (size
  velocities of non-tracked tracks zeroed before predicting, predicted sizes floored at 1 px);
* BoxMOT's ``boxmot.motion.kalman_filters.xywh.KalmanFilterXYWH`` (the optional ``boxmot`` extra; skipped with
  the reason where it is not installed), the filter BoT-SORT itself uses, with the default weights.
"""
from __future__ import annotations

import numpy as np
import pytest

from trackssm_lib.trackers import KalmanFilterXYWH, KalmanTracker
from trackssm_lib.trackers.association import Track, TrackState

WP, WV = 1.0 / 20, 1.0 / 160  # documented BoT-SORT weights
RTOL = 1e-9

# several boxes (cx, cy, w, h) in pixels: wide, tall, small, large
BOXES = np.array([[800.0, 450.0, 120.0, 60.0],
                  [310.5, 620.25, 35.0, 90.0],
                  [1500.0, 120.0, 8.0, 14.0],
                  [640.0, 480.0, 400.0, 300.0]])


# --------------------------------------------------------------------------------------------- the reference
def ref_transition() -> np.ndarray:
    """8x8 constant-velocity transition, one frame per step: each of cx, cy, w, h gains its own velocity."""
    f = np.zeros((8, 8))
    for i in range(8):
        f[i, i] = 1.0
    for i in range(4):
        f[i, 4 + i] = 1.0
    return f


def ref_observation() -> np.ndarray:
    """4x8 observation matrix: the measurement is the (cx, cy, w, h) part of the state."""
    h = np.zeros((4, 8))
    for i in range(4):
        h[i, i] = 1.0
    return h


def ref_initiate(z: np.ndarray, wp: float = WP, wv: float = WV) -> tuple[np.ndarray, np.ndarray]:
    """Mean (z, 0); covariance diagonal with std (2 wp w, 2 wp h, 2 wp w, 2 wp h, 10 wv w, 10 wv h, ...)."""
    w, h = z[2], z[3]
    mean = np.array([z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0])
    std = [2 * wp * w, 2 * wp * h, 2 * wp * w, 2 * wp * h, 10 * wv * w, 10 * wv * h, 10 * wv * w, 10 * wv * h]
    return mean, np.diag(np.square(std))


def ref_predict(x: np.ndarray, p: np.ndarray, wp: float = WP, wv: float = WV) -> tuple[np.ndarray, np.ndarray]:
    """x' = F x, P' = F P F^T + Q with Q's std (wp w, wp h, wp w, wp h, wv w, wv h, wv w, wv h) of the prior."""
    w, h = x[2], x[3]
    q = np.diag(np.square([wp * w, wp * h, wp * w, wp * h, wv * w, wv * h, wv * w, wv * h]))
    f = ref_transition()
    return f @ x, f @ p @ f.T + q


def ref_update(x: np.ndarray, p: np.ndarray, z: np.ndarray, wp: float = WP) -> tuple[np.ndarray, np.ndarray]:
    """Textbook correction with R's std (wp w, wp h, wp w, wp h) of the predicted mean: K = P H^T S^-1,
    x+ = x + K (z - H x), P+ = (I - K H) P."""
    w, h = x[2], x[3]
    r = np.diag(np.square([wp * w, wp * h, wp * w, wp * h]))
    hm = ref_observation()
    s = hm @ p @ hm.T + r
    k = p @ hm.T @ np.linalg.inv(s)
    return x + k @ (z - hm @ x), (np.eye(8) - k @ hm) @ p


def assert_close(got: np.ndarray, ref: np.ndarray, what: str) -> None:
    """Equal to 1e-9 relative (entries that are exactly zero in ``ref`` to 1e-9 of its largest magnitude)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, what
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * 1e-3 * float(np.abs(ref).max()), err_msg=what)


def measurements(n_steps: int, seed: int = 0) -> np.ndarray:
    """(n_steps, len(BOXES), 4): each box moving and growing at its own speed, with measurement noise."""
    rng = np.random.default_rng(seed)
    speed = rng.normal(0, 1, (len(BOXES), 4)) * BOXES[:, [2, 3, 2, 3]] * 0.02
    t = np.arange(1, n_steps + 1)[:, None, None]
    noise = rng.normal(0, 1, (n_steps, len(BOXES), 4)) * BOXES[:, [2, 3, 2, 3]] * 0.01
    return BOXES[None] + t * speed[None] + noise


def test_the_reference_is_a_kalman_filter():
    """Sanity of the reference itself: the Joseph form gives the same covariance, and a measurement equal to the
    prediction leaves the mean unchanged while shrinking the position variances."""
    x, p = ref_predict(*ref_initiate(BOXES[0]))
    k_x, k_p = ref_update(x, p, x[:4])
    r = np.diag(np.square(WP * x[[2, 3, 2, 3]]))
    hm = ref_observation()
    k = p @ hm.T @ np.linalg.inv(hm @ p @ hm.T + r)
    joseph = (np.eye(8) - k @ hm) @ p @ (np.eye(8) - k @ hm).T + k @ r @ k.T
    assert_close(k_p, joseph, "Joseph form")
    assert_close(k_x, x, "mean")
    assert np.all(np.diag(k_p)[:4] < np.diag(p)[:4])


# --------------------------------------------------------------------------------------------- vs the textbook
@pytest.mark.parametrize("box", list(BOXES))
def test_initiate_matches_the_textbook(box):
    mean, cov = KalmanFilterXYWH().initiate(box)
    ref_mean, ref_cov = ref_initiate(box)
    assert_close(mean, ref_mean, "mean")
    assert_close(cov, ref_cov, "covariance")


def test_batched_predict_matches_the_textbook_box_by_box():
    """``multi_predict`` on (N, 8) / (N, 8, 8) equals the single-box textbook step for every row, from states
    with non-zero velocities and full covariances."""
    kf = KalmanFilterXYWH()
    states = [ref_update(*ref_predict(*ref_initiate(b)), z) for b, z in zip(BOXES, measurements(1)[0])]
    mean, cov = kf.multi_predict(np.stack([s[0] for s in states]), np.stack([s[1] for s in states]))
    assert mean.shape == (len(BOXES), 8) and cov.shape == (len(BOXES), 8, 8)
    for i, (x, p) in enumerate(states):
        assert np.any(x[4:] != 0)
        ref_mean, ref_cov = ref_predict(x, p)
        assert_close(mean[i], ref_mean, f"box {i} mean")
        assert_close(cov[i], ref_cov, f"box {i} covariance")


@pytest.mark.parametrize("weights", [(WP, WV), (1.0 / 10, 1.0 / 80), (1.0 / 40, 1.0 / 50)])
def test_sequence_matches_the_textbook(weights):
    """Initiate, then ten frames of (batched) predict + update per box, with two missed frames (predict only);
    means and covariances after every step, for the documented and other noise weights."""
    wp, wv = weights
    kf = KalmanFilterXYWH(std_weight_position=wp, std_weight_velocity=wv)
    zs = measurements(10, seed=1)
    missed = {3, 4}
    states = [kf.initiate(b) for b in BOXES]
    refs = [ref_initiate(b, wp, wv) for b in BOXES]
    for step, z in enumerate(zs):
        mean, cov = kf.multi_predict(np.stack([s[0] for s in states]), np.stack([s[1] for s in states]))
        refs = [ref_predict(x, p, wp, wv) for x, p in refs]
        states = list(zip(mean, cov))
        if step not in missed:
            states = [kf.update(x, p, zi) for (x, p), zi in zip(states, z)]
            refs = [ref_update(x, p, zi, wp) for (x, p), zi in zip(refs, z)]
        for i, ((x, p), (rx, rp)) in enumerate(zip(states, refs)):
            assert_close(x, rx, f"step {step} box {i} mean")
            assert_close(p, rp, f"step {step} box {i} covariance")


# --------------------------------------------------------------------------------------------- the tracker's steps
def _track(state: TrackState, motion: tuple[np.ndarray, np.ndarray]) -> Track:
    return Track(box=np.zeros(4), score=0.9, class_id=0, start_frame=1, frame_id=1, state=state, motion=motion)


def test_tracker_zeroes_size_velocity_of_non_tracked_tracks_and_floors_sizes():
    """``KalmanTracker.predict``: tracked tracks predict as the textbook filter; lost and new tracks have their
    size velocities (vw, vh) zeroed first; predicted sizes are floored at 1 px (covariance untouched); the
    returned boxes are the predicted means as x1, y1, x2, y2."""
    tracker = KalmanTracker(frame_rate=12.0)
    base = [ref_update(*ref_predict(*ref_initiate(b)), z) for b, z in zip(BOXES, measurements(1, seed=2)[0])]
    shrinking = base[2][0].copy()
    shrinking[6:8] = [-shrinking[2], -shrinking[3] - 3.0]  # a tracked box whose predicted size would go below 1 px
    motions = [base[0], base[1], (shrinking, base[2][1]), base[3]]
    states = [TrackState.TRACKED, TrackState.LOST, TrackState.TRACKED, TrackState.NEW]
    tracks = [_track(s, (x.copy(), p.copy())) for s, (x, p) in zip(states, motions)]
    boxes = tracker.predict(tracks)
    for i, (t, s, (x, p)) in enumerate(zip(tracks, states, motions)):
        x = x.copy()
        if s != TrackState.TRACKED:
            assert np.any(x[6:8] != 0)
            x[6:8] = 0.0
        ref_mean, ref_cov = ref_predict(x, p)
        ref_mean[2:4] = np.maximum(ref_mean[2:4], 1.0)
        assert_close(t.motion[0], ref_mean, f"track {i} mean")
        assert_close(t.motion[1], ref_cov, f"track {i} covariance")
        c = ref_mean[:4]
        assert_close(boxes[i], [c[0] - c[2] / 2, c[1] - c[3] / 2, c[0] + c[2] / 2, c[1] + c[3] / 2], f"box {i}")
    assert tracks[2].motion[0][2] == 1.0 and tracks[2].motion[0][3] == 1.0


def test_tracker_initiates_and_corrects_from_corner_boxes():
    """``init_motion`` / ``correct`` take x1, y1, x2, y2 and run the textbook initiate / update on cx, cy, w, h."""
    tracker = KalmanTracker(frame_rate=12.0)
    first, second = BOXES[1], measurements(1, seed=3)[0][1]

    def corners(b):
        return np.array([b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2])

    track = _track(TrackState.TRACKED, None)
    track.box = corners(first)
    tracker.init_motion(track)
    ref = ref_initiate(first)
    assert_close(track.motion[0], ref[0], "initial mean")
    assert_close(track.motion[1], ref[1], "initial covariance")
    tracker.predict([track])
    tracker.correct(track, corners(second))
    ref = ref_update(*ref_predict(*ref), second)
    assert_close(track.motion[0], ref[0], "corrected mean")
    assert_close(track.motion[1], ref[1], "corrected covariance")


# --------------------------------------------------------------------------------------------- vs BoxMOT
@pytest.fixture
def boxmot_kf():
    """BoxMOT's XYWH filter (BoT-SORT's), skipped with the reason where the optional extra is absent."""
    mod = pytest.importorskip("boxmot.motion.kalman_filters.xywh",
                              reason="optional extra boxmot not installed (make test installs it)")
    return mod.KalmanFilterXYWH()


def test_boxmot_has_the_documented_weights(boxmot_kf):
    """The comparison below is only meaningful if BoxMOT uses the same weights as the default here."""
    assert boxmot_kf._std_weight_position == WP and boxmot_kf._std_weight_velocity == WV


def test_sequence_matches_boxmot(boxmot_kf):
    """Initiate, ten frames of batched predict + update (two missed) for every box: the project's filter and
    BoxMOT's give the same means and covariances after every step."""
    kf = KalmanFilterXYWH()
    zs = measurements(10, seed=4)
    missed = {5, 6}
    ours = [kf.initiate(b) for b in BOXES]
    theirs = [boxmot_kf.initiate(b.copy()) for b in BOXES]
    for i, ((x, p), (bx, bp)) in enumerate(zip(ours, theirs)):
        assert_close(x, bx, f"initial box {i} mean")
        assert_close(p, bp, f"initial box {i} covariance")
    for step, z in enumerate(zs):
        mean, cov = kf.multi_predict(np.stack([s[0] for s in ours]), np.stack([s[1] for s in ours]))
        bmean, bcov = boxmot_kf.multi_predict(np.stack([s[0] for s in theirs]), np.stack([s[1] for s in theirs]))
        ours, theirs = list(zip(mean, cov)), list(zip(bmean, bcov))
        if step not in missed:
            ours = [kf.update(x, p, zi) for (x, p), zi in zip(ours, z)]
            theirs = [boxmot_kf.update(x.copy(), p.copy(), zi.copy()) for (x, p), zi in zip(theirs, z)]
        for i, ((x, p), (bx, bp)) in enumerate(zip(ours, theirs)):
            assert_close(x, bx, f"step {step} box {i} mean")
            assert_close(p, bp, f"step {step} box {i} covariance")
