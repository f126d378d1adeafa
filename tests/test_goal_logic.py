"""Goal decisions on built metric rows, at and around their boundaries.

* ``bench/track_quality.py``: TrackSSM at least +2 HOTA over Kalman and at most 0.7x its identity switches
  (:func:`tracking_goal`, printed by :func:`format_goal` and by ``main``), and the shares of the Kalman-to-oracle
  gap (:func:`oracle_gap`);
* ``trackssm_lib.comparison.published_targets_table``: the published targets (IDSW -70 % against the zero-shot
  model, IDF1 > 60, HOTA > 50, MOTA >= 80).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from trackssm_lib.comparison import COMBINED, published_targets_table

BENCH = Path(__file__).resolve().parents[1] / "bench" / "track_quality.py"


@pytest.fixture(scope="module")
def tq():
    """``bench/track_quality.py`` imported as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_track_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_goal_constants(tq):
    """The goal of the tracking issue; the tests below build their boundary cases from these numbers."""
    assert tq.HOTA_GAIN == 2.0 and tq.IDSW_RATIO == 0.7


# ----------------------------------------------------------------------------------------- HOTA gain >= +2
@pytest.mark.parametrize("kalman, trackssm, met", [
    (50.0, 52.0, True),  # exactly +2.00
    (62.07, 64.07, True),  # +2 up to float round-off (64.07 - 62.07 = 1.999999999999993)
    (50.0, 52.01, True),
    (50.0, 60.0, True),
    (50.0, 51.99, False),
    (50.0, 51.9999, False),  # round-off allowance is no looser than 1e-9
    (50.0, 50.0, False),
    (52.0, 50.0, False),  # a loss
])
def test_hota_goal_boundary(tq, kalman, trackssm, met):
    goal = tq.tracking_goal({"HOTA": kalman, "IDSW": 10}, {"HOTA": trackssm, "IDSW": 1})
    assert goal["hota_met"] is met
    assert goal["hota_gain"] == pytest.approx(trackssm - kalman, abs=1e-12)


# ----------------------------------------------------------------------------------------- IDSW ratio <= 0.7
@pytest.mark.parametrize("kalman, trackssm, met", [
    (10, 7, True),  # exactly x0.70
    (90, 63, True),  # x0.70 up to float round-off (0.7 * 90 = 62.99999999999999)
    (100, 70, True),
    (100, 69, True),
    (100, 71, False),
    (10, 8, False),
    (3621, 2534, True),  # 0.7 * 3621 = 2534.7: 2,534 or fewer (bench/RESULTS.md)
    (3621, 2535, False),  # x0.70008
    (1000, 701, False),  # x0.701
    (10, 10, False),
    (10, 0, True),
])
def test_idsw_goal_boundary(tq, kalman, trackssm, met):
    goal = tq.tracking_goal({"HOTA": 50.0, "IDSW": kalman}, {"HOTA": 60.0, "IDSW": trackssm})
    assert goal["idsw_met"] is met
    assert goal["idsw_ratio"] == pytest.approx(trackssm / kalman, rel=1e-12)


@pytest.mark.parametrize("trackssm, met", [(0, True), (1, False), (5, False)])
def test_idsw_goal_without_kalman_switches(tq, trackssm, met):
    """No Kalman switch: 0.7x of none is none, so met only with no switch; the ratio is undefined (None)."""
    goal = tq.tracking_goal({"HOTA": 50.0, "IDSW": 0}, {"HOTA": 50.0, "IDSW": trackssm})
    assert goal["idsw_met"] is met and goal["idsw_ratio"] is None
    assert "IDSW n/a" in tq.format_goal(goal)


def test_the_two_goals_are_decided_separately(tq):
    goal = tq.tracking_goal({"HOTA": 56.33, "IDSW": 3621}, {"HOTA": 58.50, "IDSW": 2810})
    assert goal["hota_met"] and not goal["idsw_met"]
    goal = tq.tracking_goal({"HOTA": 56.33, "IDSW": 3621}, {"HOTA": 57.0, "IDSW": 2000})
    assert not goal["hota_met"] and goal["idsw_met"]


@pytest.mark.parametrize("hota_met, idsw_met, hota_word, idsw_word", [
    (True, True, "met", "met"), (True, False, "met", "NOT met"),
    (False, True, "NOT met", "met"), (False, False, "NOT met", "NOT met")])
def test_format_goal_words(tq, hota_met, idsw_met, hota_word, idsw_word):
    line = tq.format_goal({"hota_gain": 2.0, "idsw_ratio": 0.7, "hota_met": hota_met, "idsw_met": idsw_met})
    assert line == (f"TrackSSM - Kalman: HOTA +2.00 (goal >= +2.0: {hota_word}), "
                    f"IDSW x0.70 (goal <= x0.7: {idsw_word})")


# ----------------------------------------------------------------------------------------- main prints and saves
def _row(tracker: str, hota: float, idsw: int) -> dict:
    return {"tracker": tracker, "class_name": COMBINED["combined_class_avg"], "status": "ok", "reason": "",
            "HOTA": hota, "MOTA": 60.0, "IDF1": 70.0, "IDSW": idsw, "fps": 100.0, "sequences": 3,
            "detections": "noisy"}


@pytest.mark.parametrize("ssm_idsw, idsw_word", [(70, "met"), (71, "NOT met")])
def test_main_prints_and_saves_the_decision(tq, monkeypatch, tmp_path, capsys, ssm_idsw, idsw_word):
    """``main`` decides with :func:`tracking_goal` and prints :func:`format_goal`'s line and the oracle gap
    (tracking stubbed: the combined rows are given)."""
    rows = [_row("kalman", 50.0, 100), _row("trackssm", 52.0, ssm_idsw), _row("oracle", 60.0, 40)]
    monkeypatch.setattr(tq, "compare_trackers", lambda *a, **k: rows)
    monkeypatch.setattr(tq, "switch_cause_rows", lambda *a, **k: [])
    out = tmp_path / "q"
    assert tq.main(["--data", "unused", "--checkpoint", "unused", "--oracle", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert tq.format_goal(tq.tracking_goal(rows[0], rows[1])) in printed
    assert f"(goal >= +2.0: met), IDSW x{ssm_idsw / 100:.2f} (goal <= x0.7: {idsw_word})" in printed
    goal = json.loads((out / "quality.json").read_text())["goal"]
    assert goal["hota_met"] is True and goal["idsw_met"] is (idsw_word == "met")
    assert goal["oracle_gap"]["hota_share"] == pytest.approx(0.2)


# ----------------------------------------------------------------------------------------- oracle gap shares
KALMAN = {"HOTA": 50.0, "IDSW": 100}
TRACKSSM = {"HOTA": 52.0, "IDSW": 70}


def test_oracle_gap_shares(tq):
    """(value - Kalman) / (oracle - Kalman) in HOTA and IDSW; the IDSW goal's share uses 0.7x Kalman's switches."""
    gap = tq.oracle_gap(KALMAN, {"HOTA": 53.0, "IDSW": 85}, {"HOTA": 60.0, "IDSW": 40})
    assert gap["oracle_HOTA"] == 60.0 and gap["oracle_IDSW"] == 40
    assert gap["oracle_idsw_ratio"] == pytest.approx(0.4)
    assert gap["hota_share"] == pytest.approx(0.3)  # 3 of 10 HOTA
    assert gap["idsw_share"] == pytest.approx(0.25)  # 15 of 60 switches
    assert gap["idsw_share_goal"] == pytest.approx(0.5)  # 30 of 60 switches


def test_oracle_at_trackssm_and_beyond(tq):
    gap = tq.oracle_gap(KALMAN, TRACKSSM, {"HOTA": 52.0, "IDSW": 70})
    assert gap["hota_share"] == pytest.approx(1.0) and gap["idsw_share"] == pytest.approx(1.0)
    assert gap["idsw_share_goal"] == pytest.approx(1.0)
    gap = tq.oracle_gap(KALMAN, {"HOTA": 49.0, "IDSW": 120}, {"HOTA": 60.0, "IDSW": 40})
    assert gap["hota_share"] == pytest.approx(-0.1) and gap["idsw_share"] == pytest.approx(-1 / 3)


@pytest.mark.parametrize("oracle_hota", [50.0, 49.0])
def test_oracle_no_better_in_hota_gives_no_hota_share(tq, oracle_hota):
    gap = tq.oracle_gap(KALMAN, TRACKSSM, {"HOTA": oracle_hota, "IDSW": 40})
    assert gap["hota_share"] is None
    assert gap["idsw_share"] == pytest.approx(0.5)


@pytest.mark.parametrize("oracle_idsw", [100, 130])
def test_oracle_no_better_in_idsw_gives_no_idsw_shares(tq, oracle_idsw):
    gap = tq.oracle_gap(KALMAN, TRACKSSM, {"HOTA": 60.0, "IDSW": oracle_idsw})
    assert gap["idsw_share"] is None and gap["idsw_share_goal"] is None
    assert gap["hota_share"] == pytest.approx(0.2)
    assert "n/a of the IDSW gap; the IDSW goal needs n/a" in tq.format_oracle_gap(gap)


def test_oracle_gap_without_kalman_switches(tq):
    gap = tq.oracle_gap({"HOTA": 50.0, "IDSW": 0}, {"HOTA": 51.0, "IDSW": 0}, {"HOTA": 60.0, "IDSW": 0})
    assert gap["oracle_idsw_ratio"] is None and gap["idsw_share"] is None and gap["idsw_share_goal"] is None
    assert gap["hota_share"] == pytest.approx(0.1)
    assert "IDSW 0 (n/a Kalman's)" in tq.format_oracle_gap(gap)


# ----------------------------------------------------------------------------------------- published targets
FINAL, ZERO_SHOT = "trackssm-phase2", "trackssm-zero-shot"


def _targets(final: dict, zero_shot_idsw: int = 100) -> dict[str, str]:
    """``metric -> met`` of :func:`published_targets_table` for a final model with ``final``'s metrics."""
    def row(tracker: str, **metrics) -> dict:
        return {"tracker": tracker, "detections": "noisy", "class_name": COMBINED["combined_class_avg"],
                "status": "ok", "reason": "", "sequences": 3, **metrics}

    base = {"HOTA": 55.0, "MOTA": 85.0, "IDF1": 65.0, "IDSW": 10}
    rows = [row(ZERO_SHOT, **{**base, "IDSW": zero_shot_idsw}), row(FINAL, **{**base, **final})]
    return {t["metric"].split(" ")[0]: t["met"] for t in published_targets_table(rows, ZERO_SHOT, FINAL)}


@pytest.mark.parametrize("zero_shot, final, met", [
    (100, 30, "yes"),  # exactly -70 %
    (100, 29, "yes"),
    (100, 31, "no"),
    (3621, 1086, "yes"),  # -70.008 %
    (3621, 1087, "no"),  # -69.98 %
    (100, 100, "no"),
    (0, 0, "yes"),  # no zero-shot switch: met only with none
    (0, 1, "no"),
])
def test_published_idsw_target_boundary(zero_shot, final, met):
    assert _targets({"IDSW": final}, zero_shot)["IDSW"] == met


@pytest.mark.parametrize("metric, value, met", [
    ("IDF1", 60.0, "no"), ("IDF1", 60.01, "yes"), ("IDF1", 59.99, "no"),  # > 60
    ("HOTA", 50.0, "no"), ("HOTA", 50.01, "yes"), ("HOTA", 49.99, "no"),  # > 50
    ("MOTA", 80.0, "yes"), ("MOTA", 80.01, "yes"), ("MOTA", 79.99, "no"),  # >= 80
])
def test_published_absolute_target_boundary(metric, value, met):
    assert _targets({metric: value})[metric] == met
