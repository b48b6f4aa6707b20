"""The etcd test kit: a cluster whose port was taken before etcd bound it starts again."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kite_storage_etcd import testing
from kite_storage_etcd.testing import EtcdCluster

from kitecore.testing import free_port


def test_a_member_whose_port_was_taken_makes_the_cluster_start_on_new_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        given: list[int] = []

        def first_one_taken() -> int:
            # the race free_port cannot close: another process binds the port in between
            port = taken_port if not given else free_port()
            given.append(port)
            return port

        monkeypatch.setattr(testing, "free_port", first_one_taken)
        with EtcdCluster.start(tmp_path / "etcd", size=1) as cluster:
            (member,) = cluster.members
            assert taken_port not in (member.client_port, member.peer_port)
            assert member.healthy()
            assert testing.PORT_TAKEN not in member.log_tail(200)  # a fresh log
        assert given[0] == taken_port and len(given) == 4  # two ports, two attempts


def test_a_cluster_that_cannot_start_for_another_reason_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []
    real = testing.EtcdCluster.__init__

    def counted(self: EtcdCluster, *args: object, **kwargs: object) -> None:
        attempts.append(1)
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(testing.EtcdCluster, "__init__", counted)
    monkeypatch.setattr(testing, "ELECTION_MS", 10)  # below 5 heartbeats: etcd refuses it
    with pytest.raises(RuntimeError, match="exited"):
        EtcdCluster.start(tmp_path / "etcd", size=1)
    assert len(attempts) == 1
