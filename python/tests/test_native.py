"""The native core without Twisted: layouts, a select() loop dispatching batches, back-pressure
through a tiny queue, and no deadlock with the GIL while Python is busy."""

import select
import struct
import threading

import pytest

from conftest import TIMEOUT
from helpers import connect_raw, frame, recv_frame
from ltprotocol import ConnectionClosed, EncodeError, Layout, LayoutError
from ltprotocol import _native


class Handler:
    """A handler as NATIVE.md describes it, recording everything."""

    def __init__(self, decoders=None):
        self.decoders = decoders if decoders is not None else {1: lambda body: ("one", body)}
        self.events = []
        self.closed_seen = threading.Event()

    def decode(self, message_type, body):
        return ("decoded", message_type, body)

    def connection(self, conn_id, peer):
        return {"id": conn_id, "peer": peer}

    def connected(self, conn):
        self.events.append(("connected", conn["id"]))

    def message(self, conn, msg):
        self.events.append(("message", conn["id"], msg))

    def disconnected(self, conn, reason):
        self.events.append(("disconnected", conn["id"], reason))

    def error(self, conn, exc):
        self.events.append(("error", exc))

    def closed(self):
        self.closed_seen.set()


def pump(native, handler, until):
    """Dispatches on this thread until ``until()`` holds (the select() loop of NATIVE.md)."""
    fd = native.fileno()
    for _ in range(100_000):
        if until():
            return
        readable, _, _ = select.select([fd], [], [], TIMEOUT)
        assert readable, "no event within the timeout"
        native.dispatch(handler)
    raise AssertionError("never got there: %r" % handler.events[-5:])


def test_layouts_from_codes_presets_and_toml_files(tmp_path):
    assert Layout.struct_codes().header_len == 3
    assert Layout.struct_codes("Q", "b").header_len == 9
    assert Layout.struct_codes("H", "B") == Layout.struct_codes()
    assert Layout.load("ltprotocol").preset == "ltprotocol"
    assert Layout.load("openflow").header_len == 8
    toml = tmp_path / "wide.toml"
    toml.write_text('[length]\noffset = 0\nstruct = "I"\n[type]\noffset = 4\nstruct = "h"\n')
    assert Layout.load(str(toml)).header_len == 6
    bad = tmp_path / "bad.toml"
    bad.write_text('[type]\noffset = 1\ntype = "u8"\n')
    with pytest.raises(LayoutError, match="bad.toml:1: "):
        Layout.load(str(bad))
    with pytest.raises(LayoutError):
        Layout.load("nonesuch")


def test_native_server_dispatches_batches_in_order_and_sends():
    server = _native.Server(Layout.struct_codes())
    port = server.listen("127.0.0.1", 0)
    assert server.local_address == ("127.0.0.1", port)
    handler = Handler()
    with connect_raw(port) as sock:
        sock.sendall(frame(1, b"a") + frame(2, b"b") + frame(1, b"c"))
        pump(server, handler, lambda: len(handler.events) >= 4)
        conn_id = handler.events[0][1]
        assert handler.events == [
            ("connected", conn_id),
            ("message", conn_id, ("one", b"a")),
            ("message", conn_id, None),
            ("message", conn_id, ("one", b"c")),
        ]
        assert [c[0] for c in server.connections()] == [conn_id]
        server.send(conn_id, 7, b"to you")
        assert server.broadcast(8, b"to all") == (1, [])
        assert server.broadcast(9, b"to some", [conn_id + 1000, conn_id]) == (1, [])
        assert recv_frame(sock) == (7, b"to you")
        assert recv_frame(sock) == (8, b"to all")
        assert recv_frame(sock) == (9, b"to some")
        with pytest.raises(EncodeError):
            server.send(conn_id, 256, b"")
        with pytest.raises(EncodeError):
            server.send(conn_id, 1, b"x" * 70_000)
    pump(server, handler, lambda: handler.events[-1][0] == "disconnected")
    assert handler.events[-1][:2] == ("disconnected", conn_id)
    assert "closed by peer" in handler.events[-1][2]
    with pytest.raises(ConnectionClosed):
        server.send(conn_id, 1, b"")
    server.shutdown_start(5.0)
    pump(server, handler, handler.closed_seen.is_set)


def test_decode_is_called_when_decoders_is_none():
    server = _native.Server(Layout.struct_codes())
    port = server.listen("127.0.0.1", 0)
    handler = Handler()
    handler.decoders = None
    with connect_raw(port) as sock:
        sock.sendall(frame(5, b"z"))
        pump(server, handler, lambda: len(handler.events) >= 2)
    assert handler.events[1][2] == ("decoded", 5, b"z")
    server.shutdown(5.0)


def test_a_tiny_queue_slows_the_peer_and_loses_nothing():
    # Four events at most in the queue: the connection stops reading while Python lags, TCP
    # pushes back on the sender, and every message still arrives, in order.
    server = _native.Server(Layout.struct_codes(), max_events=4, max_bytes=1024)
    port = server.listen("127.0.0.1", 0)
    handler = Handler()
    count = 20_000
    wire = b"".join(frame(1, struct.pack(">I", n)) for n in range(count))
    sock = connect_raw(port)
    sender = threading.Thread(target=sock.sendall, args=(wire,))
    sender.start()
    batches = []
    original = server.dispatch

    class Counting:
        def dispatch(self, h):
            batches.append(original(h))

        def fileno(self):
            return server.fileno()

    pump(Counting(), handler, lambda: len(handler.events) >= count + 1)
    sender.join(TIMEOUT)
    got = [struct.unpack(">I", e[2][1])[0] for e in handler.events if e[0] == "message"]
    assert got == list(range(count))
    assert max(batches) <= 4
    sock.close()
    server.shutdown(5.0)


def test_no_deadlock_while_python_is_busy_and_threads_block_on_the_runtime():
    # One thread dispatches with a callback that burns CPU in Python (holding the GIL most of
    # the time); 20 clients send meanwhile; other threads make servers and clients and close
    # them (each waiting on the runtime with the GIL released). Everything must finish.
    server = _native.Server(Layout.struct_codes())
    port = server.listen("127.0.0.1", 0)
    handler = Handler()
    burn = handler.message

    def busy_message(conn, msg):
        sum(range(2000))
        burn(conn, msg)

    handler.message = busy_message
    clients, per_client = 20, 500

    def send_all():
        with connect_raw(port) as sock:
            sock.sendall(b"".join(frame(1, struct.pack(">I", n)) for n in range(per_client)))
            # Hold the connection until the server saw everything (it closes at shutdown).
            sock.recv(1)

    def churn():
        for _ in range(5):
            other = _native.Server(Layout.struct_codes())
            other_port = other.listen("127.0.0.1", 0)
            client = _native.Client(Layout.struct_codes(), "127.0.0.1", other_port)
            client.send_queued(1, b"x")
            client.close(5.0)
            other.shutdown(5.0)

    senders = [threading.Thread(target=send_all) for _ in range(clients)]
    churners = [threading.Thread(target=churn) for _ in range(2)]
    for t in senders + churners:
        t.start()
    pump(server, handler,
         lambda: sum(1 for e in handler.events if e[0] == "message") >= clients * per_client)
    for t in churners:
        t.join(TIMEOUT)
        assert not t.is_alive()
    server.shutdown_start(5.0)
    pump(server, handler, handler.closed_seen.is_set)
    for t in senders:
        t.join(TIMEOUT)
        assert not t.is_alive()
