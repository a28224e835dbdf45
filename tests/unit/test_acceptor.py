"""The connection cap's arithmetic: each client address's share, and what counts as one address."""

from __future__ import annotations

import pytest

from login_exporter.web.acceptor import Slots, address_share, client_address


@pytest.mark.parametrize(
    ("cap", "share"), [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (512, 256), (513, 256)]
)
def test_one_address_may_hold_half_the_cap_and_at_least_one(cap: int, share: int) -> None:
    assert address_share(cap) == share


@pytest.mark.parametrize("cap", [0, -1])
def test_a_cap_below_one_is_refused(cap: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        address_share(cap)


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        (("192.0.2.7", 40000), "192.0.2.7"),
        (("127.0.0.1", 40000), "loopback"),  # a local user can use any of 127/8 and ::1
        (("127.45.0.9", 40000), "loopback"),
        (("::1", 40000, 0, 0), "loopback"),
        (("::ffff:127.0.0.1", 40000, 0, 0), "loopback"),
        (("fe80::1", 40000, 0, 2), "fe80::1"),
        (("fe80::1%eth0", 40000, 0, 2), "fe80::1"),
        (("::ffff:192.0.2.7", 40000, 0, 0), "192.0.2.7"),  # an IPv4 client on a [::] listener
        (("2001:db8::ffff:1", 40000, 0, 0), "2001:db8::ffff:1"),
        ("", "unix"),
        ("/run/client.sock", "unix"),
        (b"\0abstract", "unix"),
    ],
)
def test_a_connection_counts_under_its_ip_address_and_unix_peers_as_one(
    peer: object, address: str
) -> None:
    assert client_address(peer) == address


def test_an_address_beyond_its_share_is_refused_while_others_get_the_rest() -> None:
    slots = Slots(4)
    assert [slots.take("127.0.0.1") for _ in range(3)] == [True, True, False]
    assert slots.held("127.0.0.1") == 2
    assert [slots.take("127.0.0.2") for _ in range(3)] == [True, True, False]
    assert not slots.take("127.0.0.3"), "the cap holds too"
    slots.give_back("127.0.0.1")
    assert not slots.take("127.0.0.2"), "a freed slot does not raise another address's share"
    assert slots.take("127.0.0.3")


def test_given_back_slots_can_be_taken_again_and_addresses_are_forgotten() -> None:
    slots = Slots(2)
    assert slots.take("::1")
    slots.give_back("::1")
    assert slots.held("::1") == 0 and slots.take("::1")
    slots.give_back("::1")
    assert not slots._by_address  # no memory of past clients


def test_giving_back_a_slot_not_held_is_an_error() -> None:
    slots = Slots(2)
    with pytest.raises(ValueError, match="no connection slot"):
        slots.give_back("127.0.0.1")
    assert slots.take("127.0.0.1")
