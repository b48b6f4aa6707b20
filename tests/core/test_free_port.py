"""The test kit's ``free_port``: a port no outgoing connection of the test run can take."""

from __future__ import annotations

import random
import socket

from kitecore.testing import free_port


def _ephemeral_low() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        return int(f.read().split()[0])


def test_free_ports_lie_below_the_ephemeral_range_and_are_bindable() -> None:
    low = _ephemeral_low()
    ports = {free_port() for _ in range(50)}
    assert all(10_000 <= port < low for port in ports), sorted(ports)
    assert len(ports) > 40  # chosen at random, not one port handed out again and again
    for port in list(ports)[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_seeding_random_does_not_make_the_choice_repeat() -> None:
    random.seed(1)
    first = free_port()
    random.seed(1)
    second = free_port()
    random.seed(1)
    third = free_port()
    assert len({first, second, third}) > 1


def test_a_port_is_not_handed_out_again_before_thousands_of_others() -> None:
    # nothing binds these ports: only the memory of what was handed out keeps them apart
    # (the range below 32768 holds about 22,000 ports: by chance, 3,000 draws would repeat)
    ports = [free_port() for _ in range(3000)]
    assert len(set(ports)) == len(ports)
