"""The connection's own header reader agrees with jeepney's on every header a bus relays."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from jeepney.low_level import Endianness, Header, HeaderFields, Message, MessageType
from jeepney.wrappers import new_header

from login_exporter.bus.connection import framed_sizes, read_header

NAMES = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
                max_size=40)
PATHS = st.sampled_from(["/", "/org/freedesktop/login1", "/org/freedesktop/login1/session/_31"])


@st.composite
def headers(draw: st.DrawFn) -> Header:
    header = new_header(draw(st.sampled_from(list(MessageType))))
    header.endianness = draw(st.sampled_from([Endianness.little, Endianness.big]))
    optional = {
        HeaderFields.path: PATHS, HeaderFields.interface: NAMES, HeaderFields.member: NAMES,
        HeaderFields.error_name: NAMES, HeaderFields.reply_serial: st.integers(1, 2**32 - 1),
        HeaderFields.destination: NAMES, HeaderFields.sender: NAMES,
        HeaderFields.signature: st.sampled_from(["", "s", "a{sv}", "sa{sv}as", "(so)"]),
    }
    for field, values in optional.items():
        if draw(st.booleans()):
            header.fields[field] = draw(values)
    return header


@given(headers(), st.integers(1, 2**32 - 1))
def test_read_header_agrees_with_jeepney(header: Header, serial: int) -> None:
    header.fields.pop(HeaderFields.signature, None)  # the body below has none
    raw = Message(header, ()).serialise(serial=serial)
    ours, theirs = read_header(raw), Header.from_buffer(raw)[0]
    assert (ours.message_type, ours.flags, ours.body_length, ours.serial, ours.fields) == (
        theirs.message_type, theirs.flags, theirs.body_length, theirs.serial, theirs.fields)
    header_size, size = framed_sizes(raw[:16])
    assert size == len(raw) and header_size <= size
