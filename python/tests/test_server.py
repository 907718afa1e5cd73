"""LTTwistedServer: broadcast, sending to one, its connections, the order of callbacks, what
a peer's bad bytes do, and sending from inside a callback."""

import struct
import threading

import pytest

from helpers import (
    NumMsg,
    Recorder,
    StrMsg,
    connect_raw,
    demo_protocol,
    frame,
    recv_frame,
    wait_closed,
)
from ltprotocol import ConnectionClosed, OutboxFull
from ltprotocol.ltprotocol import LTTwistedServer

NUM_200 = b"\x00\x07\x01\x00\x00\x00\xc8"


def by_port(events, sock):
    """The connection object, among the "new" events, of this raw socket's connection."""
    port = sock.getsockname()[1]
    (conn,) = [e[1] for e in events if e[0] == "new" and e[1].peer.endswith(":%d" % port)]
    return conn


def start_server(reactor_thread, recorder, protocol=None):
    server = LTTwistedServer(
        protocol or demo_protocol(), recorder.recv, recorder.new_conn, recorder.lost_conn,
        verbose=False,
    )
    port = reactor_thread.call(server.listen, 0, interface="127.0.0.1")
    return server, port


def test_listen_reports_the_bound_port(reactor_thread):
    server, port = start_server(reactor_thread, Recorder())
    assert port == server.port and port > 0
    reactor_thread.call(server.stop)


def test_broadcast_reaches_every_client_once(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    clients = [connect_raw(port) for _ in range(50)]
    recorder.wait_count("new", 50)
    assert reactor_thread.call(server.send, NumMsg(200)) == 50
    reactor_thread.call(server.send, StrMsg("end"))
    for sock in clients:
        assert recv_frame(sock) == (1, struct.pack(">I", 200))
        assert recv_frame(sock) == (2, b"end")
        sock.close()
    recorder.wait_count("lost", 50)
    reactor_thread.call(server.stop)


def test_send_to_one_client_reaches_that_client_only(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    a, b = connect_raw(port), connect_raw(port)
    # Connections are announced in whichever order their tasks ran: find a's by its port.
    conn_a = by_port(recorder.wait_count("new", 2), a)
    reactor_thread.call(server.send_msg_to_client, conn_a, NumMsg(1))
    # The sentinel, broadcast after it: b's first frame must be the sentinel.
    reactor_thread.call(server.send, StrMsg("sentinel"))
    assert recv_frame(a) == (1, struct.pack(">I", 1))
    assert recv_frame(a) == (2, b"sentinel")
    assert recv_frame(b) == (2, b"sentinel")
    a.close()
    b.close()
    reactor_thread.call(server.stop)


def test_connections_and_num_protocols_follow_the_clients(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    socks = [connect_raw(port) for _ in range(3)]
    recorder.wait_count("new", 3)
    conns = reactor_thread.call(lambda: list(server.connections))
    assert reactor_thread.call(lambda: server.numProtocols) == 3
    assert [c for _, c in recorder.of_kind("new")] == conns
    local_ports = sorted(s.getsockname()[1] for s in socks)
    assert sorted(int(c.peer.rsplit(":", 1)[1]) for c in conns) == local_ports
    for conn in conns:
        assert conn.connected
        assert str(conn).startswith("IPv4Address(type='TCP', host='127.0.0.1', port=")
        assert conn.transport.getPeer().host == "127.0.0.1"
    closing = by_port(recorder.events, socks[1])
    socks[1].close()
    lost = recorder.wait_count("lost", 1)[-1][1]
    assert lost is closing
    assert not lost.connected
    assert reactor_thread.call(lambda: list(server.connections)) == [
        c for c in conns if c is not lost
    ]
    assert reactor_thread.call(lambda: server.numProtocols) == 2
    for sock in (socks[0], socks[2]):
        sock.close()
    recorder.wait_count("lost", 3)
    assert reactor_thread.call(lambda: (server.connections, server.numProtocols)) == ([], 0)
    reactor_thread.call(server.stop)


def test_callbacks_come_in_order_connect_message_disconnect_on_the_reactor_thread(
    reactor_thread,
):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    reactor_ident = reactor_thread.call(threading.get_ident)
    with connect_raw(port) as sock:
        sock.sendall(b"".join(frame(1, struct.pack(">I", n)) for n in range(1000)))
    events = recorder.wait_count("lost", 1)
    kinds = [e[0] for e in events]
    assert kinds == ["new"] + ["msg"] * 1000 + ["lost"]
    assert [e[2] for e in events[1:-1]] == [("num", n) for n in range(1000)]
    assert len({id(e[1]) for e in events}) == 1, "one connection object throughout"
    assert recorder.threads == {reactor_ident}
    reactor_thread.call(server.stop)


def test_unknown_type_reaches_recv_callback_as_none(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    with connect_raw(port) as sock:
        sock.sendall(frame(99, b"what is this") + NUM_200)
        events = recorder.wait_count("msg", 2)
    assert [e[2] for e in events if e[0] == "msg"] == [None, ("num", 200)]
    reactor_thread.call(server.stop)


@pytest.mark.parametrize(
    "bad", [b"\x00\x00\x01", b"\x00\x01\x01", b"\x00\x02\x01"], ids=["len0", "len1", "len2"]
)
def test_a_bad_length_closes_only_that_connection(reactor_thread, bad):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    good, evil = connect_raw(port), connect_raw(port)
    evil_conn = by_port(recorder.wait_count("new", 2), evil)
    evil.sendall(NUM_200 + bad + NUM_200)
    # Only what came before the bad header is delivered; then the connection is closed.
    assert wait_closed(evil) == b""
    evil.close()
    events = recorder.wait_count("lost", 1)
    assert events[-1][1] is evil_conn
    assert [e[2] for e in events if e[0] == "msg" and e[1] is evil_conn] == [("num", 200)]
    # The other connection goes on both ways.
    good.sendall(NUM_200)
    recorder.wait_for(lambda ev: sum(1 for e in ev if e[0] == "msg") == 2)
    reactor_thread.call(server.send, StrMsg("still here"))
    assert recv_frame(good) == (2, b"still here")
    good.close()
    reactor_thread.call(server.stop)


def test_a_length_over_the_limit_closes_only_that_connection(reactor_thread):
    # len_type 'I': the ancestor buffered up to 4 GiB; ours refuses past 8 MiB from the header.
    proto = demo_protocol("I", "B")
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder, proto)
    good, evil = connect_raw(port), connect_raw(port)
    recorder.wait_count("new", 2)
    evil.sendall(struct.pack(">IB", 0xFFFF_FFF0, 1) + b"x" * 100)
    assert wait_closed(evil) == b""
    recorder.wait_count("lost", 1)
    good.sendall(frame(1, struct.pack(">I", 7), "I", "B"))
    events = recorder.wait_count("msg", 1)
    assert events[-1][2] == ("num", 7)
    good.close()
    reactor_thread.call(server.stop)


def test_a_callback_can_send_from_inside_a_callback(reactor_thread):
    # An echo server: every message goes back from recv_callback, and new_conn_callback greets.
    recorder = Recorder()
    server = LTTwistedServer(
        demo_protocol(),
        lambda conn, msg: conn.send(msg),
        lambda conn: conn.send(StrMsg("hello")),
        verbose=False,
    )
    port = reactor_thread.call(server.listen, 0, interface="127.0.0.1")
    with connect_raw(port) as sock:
        assert recv_frame(sock) == (2, b"hello")
        sock.sendall(b"".join(frame(1, struct.pack(">I", n)) for n in range(500)))
        for n in range(500):
            assert recv_frame(sock) == (1, struct.pack(">I", n))
    reactor_thread.call(server.stop)
    del recorder


def test_a_raising_callback_closes_its_connection_only(reactor_thread):
    recorder = Recorder()

    def recv(conn, msg):
        recorder.recv(conn, msg)
        if msg.num == 13:
            raise ValueError("unlucky")

    server = LTTwistedServer(demo_protocol(), recv, recorder.new_conn, recorder.lost_conn,
                             verbose=False)
    port = reactor_thread.call(server.listen, 0, interface="127.0.0.1")
    good, bad = connect_raw(port), connect_raw(port)
    recorder.wait_count("new", 2)
    bad.sendall(frame(1, struct.pack(">I", 13)) + frame(1, struct.pack(">I", 14)))
    assert wait_closed(bad) == b""
    bad.close()
    events = recorder.wait_count("lost", 1)
    assert [e[2] for e in events if e[0] == "msg"] == [("num", 13)]
    good.sendall(NUM_200)
    recorder.wait_count("msg", 2)
    good.close()
    reactor_thread.call(server.stop)


def test_send_to_a_closed_connection_raises(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    sock = connect_raw(port)
    conn = recorder.wait_count("new", 1)[0][1]
    sock.close()
    recorder.wait_count("lost", 1)
    with pytest.raises(ConnectionClosed):
        reactor_thread.call(conn.send, NumMsg(1))
    reactor_thread.call(server.stop)


def test_a_full_outbox_raises_outbox_full_and_never_blocks(reactor_thread):
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    sock = connect_raw(port)
    conn = recorder.wait_count("new", 1)[0][1]
    big = StrMsg("x" * 60_000)

    def fill():
        # The peer never reads: the kernel's buffers, then the 1 MiB outbox, fill up.
        for sent in range(100_000):
            try:
                conn.send(big)
            except OutboxFull:
                return sent
        return None

    sent = reactor_thread.call(fill)
    assert sent is not None and sent > 0
    # Everything accepted before the refusal is delivered, in order, once the peer reads.
    total = 0
    for _ in range(sent):
        assert recv_frame(sock) == (2, b"x" * 60_000)
        total += 1
    assert total == sent
    sock.close()
    reactor_thread.call(server.stop)


def test_broadcast_follows_the_connections_list_as_the_ancestors_did(reactor_thread):
    # The ancestor's send wrote to whatever `connections` held: a program that takes a
    # connection out of it (the ancestor's bench does, to broadcast to everyone else) must
    # see that connection left out.
    recorder = Recorder()
    server, port = start_server(reactor_thread, recorder)
    a, b = connect_raw(port), connect_raw(port)
    conn_a = by_port(recorder.wait_count("new", 2), a)

    def broadcast_without_a():
        server.connections.remove(conn_a)
        try:
            return server.send(NumMsg(5))
        finally:
            server.connections.append(conn_a)

    assert reactor_thread.call(broadcast_without_a) == 1
    assert reactor_thread.call(server.send, StrMsg("all")) == 2
    assert recv_frame(b) == (1, struct.pack(">I", 5))
    assert recv_frame(b) == (2, b"all")
    assert recv_frame(a) == (2, b"all")
    a.close()
    b.close()
    reactor_thread.call(server.stop)
