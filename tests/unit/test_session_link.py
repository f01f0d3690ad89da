"""A dangling `session_latest` (its session deleted) is removed before Ray starts."""

from __future__ import annotations

from pathlib import Path

from simsignal.actors.cluster import drop_dangling_session_link


def test_only_a_dangling_link_is_removed(tmp_path: Path) -> None:
    link = tmp_path / "session_latest"
    assert not drop_dangling_session_link(tmp_path)  # nothing there
    alive = tmp_path / "session_a"
    alive.mkdir()
    link.symlink_to(alive)
    assert not drop_dangling_session_link(tmp_path) and link.is_symlink()  # a good link stays
    alive.rmdir()  # a cleaner deleted the session
    assert drop_dangling_session_link(tmp_path)
    assert not link.is_symlink() and not link.exists()
