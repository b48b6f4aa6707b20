"""Kontrol processes on PostgreSQL for the distributed tests (a module: conftest is not
importable)."""

from __future__ import annotations

from pathlib import Path

from kite_kontrol.testing import KONTROL_USER, REGISTRATION_SECRET, KontrolProcess

from kitecore.testing import free_port


class PostgresKontrol(KontrolProcess):
    """A Kontrol process storing in PostgreSQL; every instance given the same ``data_dir``
    shares the key pair (the first one creates it). The password is passed in
    ``KONTROL_POSTGRES_PASSWORD``, not on the command line."""

    def __init__(
        self, tmp_path: Path, index: int, *, storage_url: str, password: str, data_dir: Path
    ) -> None:
        super().__init__(
            tmp_path,
            port=free_port(),
            storage_url=storage_url,
            data_dir=data_dir,
            username=KONTROL_USER,
            registration_secret=REGISTRATION_SECRET,
            plugins="websocket,postgres",
            env={"KONTROL_POSTGRES_PASSWORD": password},
            name=f"kontrol-{index}",
        )
        self.index = index
