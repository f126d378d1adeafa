"""Report profiles are checked whole before the first chapter runs: a bad training override of a later chapter
stops the run at once, naming the profile file, the chapter and the key."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml


def _profile(tmp_path: Path, overrides: dict) -> Path:
    (tmp_path / "nusc").mkdir()
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({
        "title": "check", "dataroot": str(tmp_path / "nusc"), "output_dir": str(tmp_path / "out"),
        "book_dir": str(tmp_path / "book"),
        "notebooks": ["01_projection_sanity", "02_interpolation", "03_phase1_decoder", "04_phase2_full"],
        "parameters": {"04_phase2_full": {"overrides": overrides}}}))
    return path


@pytest.mark.parametrize("overrides, message", [
    ({"warmup_epochs": 1, "batch_sise": 2}, r"'overrides' key 'batch_sise' is not a training config key"),
    ({"batch_size": "two"}, r"config key 'batch_size' expects int >= 1, got 'two'"),
])
def test_bad_training_override_fails_before_the_first_chapter(tmp_path, monkeypatch, overrides, message):
    import papermill

    from trackssm_lib import cli
    from trackssm_lib.report import run_report

    def no_chapter(*args, **kwargs):
        raise AssertionError("a chapter ran before the profile was checked")

    monkeypatch.setattr(papermill, "execute_notebook", no_chapter)
    profile = _profile(tmp_path, overrides)
    where = rf"report profile {re.escape(str(profile))}, chapter 04_phase2_full: "
    with pytest.raises(ValueError, match=rf"{where}.*{message}"):
        run_report(profile, build=False)
    assert not (tmp_path / "book" / "chapters").exists()
    assert cli.main(["report", "--profile", str(profile)]) == 2
