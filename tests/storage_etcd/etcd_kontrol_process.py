"""A ``python -m kite_kontrol`` process on etcd storage, for the distributed tests (a module of
its own: conftest is not importable)."""

from __future__ import annotations

from pathlib import Path

from kite_kontrol.testing import KONTROL_USER, REGISTRATION_SECRET, KontrolProcess


def etcd_kontrol(work_dir: Path, *, port: int, storage_url: str, data_dir: Path) -> KontrolProcess:
    """A Kontrol process storing in etcd; several given one ``data_dir`` share a key pair."""
    return KontrolProcess(
        work_dir,
        port=port,
        storage_url=storage_url,
        data_dir=data_dir,
        username=KONTROL_USER,
        registration_secret=REGISTRATION_SECRET,
        plugins="websocket,etcd",
    )
