"""Atomic writes: the old file survives a failed write and no temporary file is left behind."""
import json

import pytest

from trackssm_lib.fileio import write_json_atomic, write_text_atomic


def test_write_text_atomic_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "out.txt"
    write_text_atomic(path, "first\n")
    write_text_atomic(path, "second\n")
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"HOTA": 50.0})
    with pytest.raises(TypeError):  # fails before anything is written
        write_json_atomic(path, {"HOTA": object()})
    with pytest.raises(TypeError):  # fails while the temporary file is being written
        write_text_atomic(path, 123)  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {"HOTA": 50.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_write_json_atomic_options(tmp_path):
    path = write_json_atomic(tmp_path / "x.json", {"b": 1, "a": [1, 2]}, indent=2, sort_keys=True)
    text = path.read_text()
    assert text.endswith("}\n") and text.index('"a"') < text.index('"b"')
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "nan.json", {"x": float("nan")}, allow_nan=False)
    assert not (tmp_path / "nan.json").exists()
