"""devstack.ports.free_port: the ports the stacks' servers are started on."""

from __future__ import annotations

import socket

import pytest

from devstack import ports


def test_ports_come_from_below_the_systems_ephemeral_range() -> None:
    """Outgoing connections take their local ports from the ephemeral range (bind(0)'s too): a
    port picked there could be taken before the server binds it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
    picked = [ports.free_port() for _ in range(200)]
    assert all(port < ephemeral_low for port in picked), sorted(picked)[-5:]


def test_no_port_is_handed_out_twice_while_a_stack_picks_its_ports() -> None:
    picked = [ports.free_port() for _ in range(500)]
    assert len(set(picked)) == len(picked)


def test_a_port_something_listens_on_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        taken = listening.getsockname()[1]
        monkeypatch.setenv("CLASSIFIER_TEST_PORTS", f"{taken}-{taken}")
        with pytest.raises(RuntimeError, match="no free port"):
            ports.free_port()
