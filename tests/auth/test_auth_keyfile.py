"""The kite.key file: location, modes, trimming, clear errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from kite_auth_token import (
    KiteKeyNotFoundError,
    kite_home,
    kite_key_path,
    read_kite_key,
    write_kite_key,
)


def test_location_from_kite_home_or_home_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "kh"))
    assert kite_home() == tmp_path / "kh"
    assert kite_key_path() == tmp_path / "kh" / "kite.key"
    monkeypatch.setenv("KITE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert kite_key_path() == tmp_path / "home" / ".kite" / "kite.key"
    assert kite_key_path({"KITE_HOME": "/srv/kite"}) == Path("/srv/kite/kite.key")


def test_write_sets_modes_and_read_trims(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KITE_HOME", str(tmp_path / "new" / ".kite"))
    old_umask = os.umask(0o022)
    try:
        path = write_kite_key("  header.claims.sig\n")
    finally:
        os.umask(old_umask)
    assert path == tmp_path / "new" / ".kite" / "kite.key"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert path.read_text() == "header.claims.sig"
    assert read_kite_key() == "header.claims.sig"


def test_write_replaces_a_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "kite.key"
    write_kite_key("first.token.x", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    write_kite_key("second.token.y", path)
    assert read_kite_key(path) == "second.token.y"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400


def test_read_trims_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "kite.key"
    path.write_text("\n\t a.b.c \r\n")
    assert read_kite_key(path) == "a.b.c"


def test_missing_or_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kite.key"
    with pytest.raises(KiteKeyNotFoundError, match=r"kite\.key not found at .*nowhere") as info:
        read_kite_key(missing)
    assert isinstance(info.value, FileNotFoundError)
    empty = tmp_path / "kite.key"
    empty.write_text("  \n")
    with pytest.raises(KiteKeyNotFoundError, match="is empty"):
        read_kite_key(empty)
    with pytest.raises(ValueError, match="empty"):
        write_kite_key(" ", tmp_path / "other.key")
