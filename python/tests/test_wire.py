"""The bytes on the wire: the ancestor's golden frames, and every struct code pair both ways,
checked with plain Python sockets and Python's struct."""

import itertools
import struct

import pytest

from helpers import (
    NumMsg,
    Recorder,
    StrMsg,
    connect_raw,
    demo_protocol,
    frame,
    recv_exact,
    recv_frame,
)
from ltprotocol import LayoutError
from ltprotocol.ltprotocol import LTMessage, LTProtocol, LTTwistedServer

GOLDEN_NUM = b"\x00\x07\x01\x00\x00\x00\xc8"
GOLDEN_STR = b"\x00\x0f\x02hello world!"
CODES = "bBhHiIlLqQ"


def start_server(reactor_thread, protocol, recorder, **kwargs):
    server = LTTwistedServer(
        protocol, recorder.recv, recorder.new_conn, recorder.lost_conn, verbose=False, **kwargs
    )
    port = reactor_thread.call(server.listen, 0, interface="127.0.0.1")
    return server, port


def test_pack_with_header_gives_the_golden_bytes():
    proto = demo_protocol()
    assert proto.pack_with_header(NumMsg(200)) == GOLDEN_NUM
    assert proto.pack_with_header(StrMsg("hello world!")) == GOLDEN_STR
    assert proto.unpack_received_msg(1, b"\x00\x00\x00\xc8").num == 200
    assert proto.unpack_received_msg(9, b"") is None


def test_server_sends_the_golden_bytes(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, demo_protocol(), recorder)
    with connect_raw(port) as sock:
        events = recorder.wait_count("new", 1)
        conn = events[0][1]
        reactor_thread.call(server.send_msg_to_client, conn, NumMsg(200))
        reactor_thread.call(conn.send, StrMsg("hello world!"))
        assert recv_exact(sock, len(GOLDEN_NUM) + len(GOLDEN_STR)) == GOLDEN_NUM + GOLDEN_STR
    reactor_thread.call(server.stop)


def test_server_decodes_the_golden_bytes(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, demo_protocol(), recorder)
    with connect_raw(port) as sock:
        # Split mid-header and mid-body: framing must not care.
        wire = GOLDEN_NUM + GOLDEN_STR
        for piece in (wire[:1], wire[1:9], wire[9:]):
            sock.sendall(piece)
        events = recorder.wait_count("msg", 2)
    assert [e[2] for e in events if e[0] == "msg"] == [("num", 200), ("str", "hello world!")]
    reactor_thread.call(server.stop)


class Probe(LTMessage):
    """A message whose type number is chosen per test (for every struct code)."""

    TYPE = 1

    def __init__(self, body):
        self.body = body

    @classmethod
    def get_type(cls):
        return cls.TYPE

    def pack(self):
        return self.body

    @staticmethod
    def unpack(body):
        return Probe(body)


@pytest.mark.parametrize("len_type,type_type", list(itertools.product(CODES, CODES)))
def test_every_struct_code_pair_frames_as_pythons_struct(reactor_thread, len_type, type_type):
    # The largest type number the field holds (negative for a signed one, to prove the sign).
    type_size = struct.calcsize(">" + type_type)
    signed = type_type.islower()
    message_type = -(2 ** (8 * type_size - 1)) if signed else 2 ** (8 * type_size) - 1

    class Wide(Probe):
        TYPE = message_type

    proto = LTProtocol([Wide], len_type, type_type)
    body = b"abc"
    expected = frame(message_type, body, len_type, type_type)
    assert proto.pack_with_header(Wide(body)) == expected

    received = []
    recorder = Recorder()
    recorder.recv = lambda conn, msg: recorder.add(("msg", conn, msg.body))
    server, port = start_server(reactor_thread, proto, recorder)
    with connect_raw(port) as sock:
        sock.sendall(expected)
        received = recorder.wait_count("msg", 1)
        conn = received[0][1]
        reactor_thread.call(conn.send, Wide(b"xyz"))
        assert recv_frame(sock, len_type, type_type) == (message_type, b"xyz")
    assert received[-1][2] == body
    reactor_thread.call(server.stop)


def test_a_struct_code_the_ancestor_never_had_is_refused():
    with pytest.raises(LayoutError):
        LTProtocol([NumMsg], "x", "B")
    with pytest.raises(LayoutError):
        LTProtocol([NumMsg], "H", "BB")
