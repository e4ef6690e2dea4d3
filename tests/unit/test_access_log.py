"""The access log file: its rollover, including one the system refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelserver.logs import AccessLogFile, rotate


def test_the_access_log_rolls_over_and_keeps_old_files(tmp_path: Path) -> None:
    path = tmp_path / "access_log.log"
    log = AccessLogFile(path, roll_bytes=10)
    for line in ("first line\n", "second line\n", "third line\n"):
        log.write(line)  # no running loop: each write is flushed at once, and rolls
    log.close()
    assert (tmp_path / "access_log.log.1").read_text() == "third line\n"
    assert (tmp_path / "access_log.log.2").read_text() == "second line\n"


def test_a_refused_rollover_is_reported_and_the_log_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A rename refused (a read-only directory) left the file closed: every later request's line raised."""
    path = tmp_path / "access_log.log"
    log = AccessLogFile(path, roll_bytes=10)

    def refuse(source: object, target: object) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", refuse)
    log.write("first line\n")
    monkeypatch.undo()
    log.write("second line\n")
    log.close()
    assert "Cannot write" in caplog.text
    assert "second line" in path.read_text() + "".join(p.read_text() for p in tmp_path.glob("access_log.log.*"))


def test_rotate_keeps_at_most_keep_old_files(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    for generation in range(4):
        path.write_text(str(generation))
        rotate(path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.log.1", "x.log.2"]
    assert (tmp_path / "x.log.1").read_text() == "3" and (tmp_path / "x.log.2").read_text() == "2"
