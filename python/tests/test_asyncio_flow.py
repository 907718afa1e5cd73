"""Flow control of the asyncio API: a connection whose messages the program does not take
stops being read (its inbox is bounded), the others go on, and nothing is lost.

Real sockets on 127.0.0.1, ephemeral ports; every wait is bounded by a generous timeout that
only turns a hang into a failure (nothing asserts on time). The peers that flood are plain
Python sockets on threads, sending frames of the ``ltprotocol`` preset (``>HB`` header, the
length counting the header) whose bodies start with a sequence number.
"""

import asyncio
import socket
import struct
import threading

import pytest

import ltprotocol
from ltprotocol import Client, ConnectionClosed, Frame, Server
from test_asyncio import TIMEOUT, run

#: Messages each flood sends, and the size of their bodies: 200 MB in all, far more than the
#: kernel's socket buffers can take, so an unbounded inbox would have to hold most of it.
COUNT = 200_000
BODY = 1000
#: What a message the program never took costs at the least in Python (its Frame and body).
AT_LEAST_PER_MESSAGE = BODY + 100


def frame(seq):
    body = struct.pack(">I", seq) + bytes(BODY - 4)
    return struct.pack(">HB", 3 + len(body), 7) + body


def seq_of(msg):
    assert isinstance(msg, Frame) and msg.message_type == 7 and len(msg.body) == BODY
    return struct.unpack(">I", msg.body[:4])[0]


def rss():
    """This process's resident memory, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class Flood(threading.Thread):
    """Sends frames ``first .. first+count-1`` on a connected socket, 1,000 at a time, then
    closes it (``count=None``: until the socket fails). ``sent`` counts the frames written."""

    def __init__(self, sock, count, first=0):
        super().__init__(daemon=True)
        self.sock = sock
        self.count = count
        self.first = first
        self.sent = 0
        self.error = None

    def run(self):
        try:
            seq = self.first
            while self.count is None or self.sent < self.count:
                n = 1000 if self.count is None else min(1000, self.count - self.sent)
                self.sock.sendall(b"".join(frame(s) for s in range(seq, seq + n)))
                seq += n
                self.sent += n
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.error = exc
        finally:
            self.sock.close()

    def finish(self):
        self.join(TIMEOUT)
        assert not self.is_alive(), "the flood did not finish"


async def wait_paused(conn, limit=1024):
    """Waits until the connection is paused (polling; bounded by the test's hang guard),
    its inbox never past ``limit`` meanwhile."""
    while not conn.paused:
        assert conn.pending <= limit
        await asyncio.sleep(0.02)


async def round_trips(client, server_conn, n):
    """``n`` messages from ``client`` echoed back by ``server_conn``'s task."""
    for i in range(n):
        await client.send(Frame(3, b"ping %d" % i))
        reply = await client.receive()
        assert reply == Frame(3, b"ping %d" % i)


async def echo(conn):
    async for msg in conn:
        await conn.send(msg)


def check_bounded(conn, native, limit_messages, limit_bytes, before):
    """Nothing past the bound reached Python, and memory shows it."""
    assert conn.paused
    assert conn.pending <= limit_messages
    messages, held_bytes, paused = native.inbox(conn.id)
    assert paused
    # What reached Python and was not taken: in the event queue or the inbox.
    assert conn.pending <= messages <= limit_messages
    assert held_bytes <= limit_bytes
    grown = rss() - before
    # Far below what the flood's messages would take if they had all been received (the
    # kernel alone can buffer tens of MB of it, which is not ours).
    assert grown < 10_000 * AT_LEAST_PER_MESSAGE, "RSS grew by %d bytes" % grown


def test_a_server_connection_the_program_does_not_read_is_paused_and_loses_nothing():
    async def main():
        async with Server(host="127.0.0.1", port=0) as server:
            before = rss()
            flooding = socket.create_connection(("127.0.0.1", server.port))
            flood = Flood(flooding, COUNT)
            flood.start()
            conn = await server.accept()
            # The program does not read `conn`: it pauses at the bound.
            await wait_paused(conn)
            await asyncio.sleep(0.5)  # let whatever was going to arrive arrive
            check_bounded(conn, server._native, 1024, 1024 * 1024, before)
            assert flood.is_alive(), "the flood cannot have been absorbed: it is blocked"

            # Another connection on the same server keeps round-tripping meanwhile.
            async with Client("127.0.0.1", server.port) as client:
                other = await server.accept()
                echoing = asyncio.ensure_future(echo(other))
                await round_trips(client, other, 200)
                assert conn.paused
                await client.close()
                await echoing

            # Now the program reads everything: every message, in order, then the end.
            expected = 0
            async for msg in conn:
                assert seq_of(msg) == expected
                expected += 1
            assert expected == COUNT
            assert isinstance(conn.close_reason, ConnectionClosed)
            assert "closed by peer" in str(conn.close_reason)
            flood.finish()
            assert flood.error is None and flood.sent == COUNT

    run(main())


def test_a_client_the_program_does_not_read_is_paused_and_loses_nothing_across_reconnects():
    half = COUNT // 2
    listener = socket.create_server(("127.0.0.1", 0))
    floods = []

    def serve():
        # Two connections in turn, each flooded then closed: the client reconnects between.
        for first in (0, half):
            sock, _ = listener.accept()
            flood = Flood(sock, half, first)
            floods.append(flood)
            flood.run()

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()

    async def main():
        port = listener.getsockname()[1]
        async with Client("127.0.0.1", port, initial_delay=0.05, max_delay=0.2) as client:
            before = rss()
            conn = await client.wait_connected(TIMEOUT)
            await wait_paused(conn)
            await asyncio.sleep(0.5)
            check_bounded(conn, client._native, 1024, 1024 * 1024, before)
            assert client.pending == conn.pending
            assert serving.is_alive(), "the first flood cannot have been absorbed"

            # `async for msg in client` reads both connections in turn, in order.
            expected = 0
            async for msg in client:
                assert seq_of(msg) == expected
                expected += 1
                if expected == COUNT:
                    break
            assert client.pending == 0
        serving.join(TIMEOUT)
        assert not serving.is_alive()
        assert [(f.error, f.sent) for f in floods] == [(None, half), (None, half)]

    try:
        run(main())
    finally:
        listener.close()


def test_the_byte_bound_pauses_a_connection_of_large_messages():
    async def main():
        options = dict(inbox_messages=100_000, inbox_capacity=64 * 1024)
        async with Server(host="127.0.0.1", port=0, **options) as server:
            flood = Flood(socket.create_connection(("127.0.0.1", server.port)), 20_000)
            flood.start()
            conn = await server.accept()
            await wait_paused(conn, 65)
            messages, held_bytes, _ = server._native.inbox(conn.id)
            assert held_bytes <= 64 * 1024 and messages <= 64 * 1024 // BODY
            assert conn.pending <= messages
            expected = 0
            async for msg in conn:
                assert seq_of(msg) == expected
                expected += 1
            assert expected == 20_000
            flood.finish()

    run(main())


def test_closing_a_paused_connection_or_server_does_not_hang():
    async def main():
        async with Server(host="127.0.0.1", port=0, inbox_messages=64, linger=1.0) as server:
            floods = [
                Flood(socket.create_connection(("127.0.0.1", server.port)), None)
                for _ in range(2)
            ]
            for flood in floods:
                flood.start()
            first = await server.accept()
            second = await server.accept()
            await wait_paused(first, 64)
            await wait_paused(second, 64)

            # The program closes one paused connection: it ends (the peer, flooding on, is
            # reset), and what it held is still there to read, then the iteration ends.
            first.close()
            reason = await first.wait_closed()
            assert isinstance(reason, ConnectionClosed)
            held = [seq_of(msg) async for msg in first]
            assert 0 < len(held) <= 64 and held == list(range(len(held)))

            # Closing the server ends the other paused connection too.
            await server.close()
            assert isinstance(second.close_reason, ConnectionClosed)
            held = [seq_of(msg) async for msg in second]
            assert 0 < len(held) <= 64 and held == list(range(len(held)))
            for flood in floods:
                flood.finish()
                assert flood.error is not None, "a flood that never stops ends on an error"

    run(main())


def test_inbox_options_are_checked_and_have_defaults():
    assert ltprotocol.DEFAULTS["inbox_messages"] == 1024
    assert ltprotocol.DEFAULTS["inbox_capacity"] == 1024 * 1024
    with pytest.raises(ltprotocol.ConfigError, match="inbox_messages"):
        Server(inbox_messages=0)
    with pytest.raises(ltprotocol.ConfigError, match="inbox_capacity"):
        Client("127.0.0.1", 1, inbox_capacity=0)
