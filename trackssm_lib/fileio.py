"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader (or a resumed run) sees either the old file or the whole new one, never a half-written file, even when the
writer is interrupted. Used for every result, manifest and marker file the project writes.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (parent folders are created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any, **dump_options: Any) -> Path:
    """``json.dumps(data, **dump_options)`` plus a final newline, written atomically (default ``indent=1``)."""
    dump_options.setdefault("indent", 1)
    return write_text_atomic(path, json.dumps(data, **dump_options) + "\n")
