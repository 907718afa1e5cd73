"""The asyncio API (ltprotocol.Server, ltprotocol.Client) over real sockets on 127.0.0.1.

Every server listens on an ephemeral port; every wait is bounded by a generous timeout that
only turns a hang into a failure (nothing asserts on time). To show that something did not
happen, a sentinel is sent after it and is what arrives next.
"""

import asyncio
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap

import pytest

import ltprotocol
from helpers import NumMsg, StrMsg, default_sigint
from ltprotocol import (
    BadLength,
    Client,
    ClientTls,
    ConnectionClosed,
    DecodeError,
    EncodeError,
    Frame,
    FrameTooLarge,
    Layout,
    LayoutError,
    OutboxFull,
    SchemaError,
    SchemaMessage,
    Server,
    ServerTls,
)

#: Seconds any single wait may take before the test fails (a hang guard, never a measure).
TIMEOUT = 60.0
HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")


DEMO = [NumMsg, StrMsg]


def run(coro):
    """Runs a test coroutine under a hang guard."""
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


async def echo(conn):
    async for msg in conn:
        await conn.send(msg)


async def serve_echo(server):
    tasks = []
    async for conn in server:
        tasks.append(asyncio.ensure_future(echo(conn)))


async def raw_connect(port):
    return await asyncio.open_connection("127.0.0.1", port)


async def read_frame(reader):
    """One ltprotocol-preset frame from a raw stream: (type, body)."""
    head = await reader.readexactly(3)
    length, message_type = struct.unpack(">HB", head)
    return message_type, await reader.readexactly(length - 3)


# ---- errors -------------------------------------------------------------------------------


def test_every_exception_is_an_ltprotocol_error_and_its_builtin_kind():
    assert issubclass(ConnectionClosed, ltprotocol.Error)
    assert issubclass(ConnectionClosed, ConnectionError)
    assert issubclass(OutboxFull, BlockingIOError)
    assert issubclass(EncodeError, ValueError)
    assert issubclass(ltprotocol.TimedOut, TimeoutError)
    assert issubclass(ltprotocol.TimedOut, ConnectionClosed)
    for cls in (FrameTooLarge, BadLength, DecodeError):
        assert issubclass(cls, ltprotocol.ProtocolError)
        assert issubclass(cls, ConnectionClosed)
    for cls in (LayoutError, SchemaError):
        assert issubclass(cls, ltprotocol.ConfigError)
        assert issubclass(cls, ltprotocol.Error)
    assert ConnectionClosed.__module__ == "ltprotocol"


def test_layout_and_schema_files_report_file_and_line(tmp_path):
    bad_layout = tmp_path / "bad_layout.toml"
    bad_layout.write_text('[length]\noffset = 0\ntype = "u16"\n\n[type]\noffset = 1\ntype = "u8"\n')
    with pytest.raises(LayoutError) as err:
        Server(layout=str(bad_layout))
    assert str(bad_layout) in str(err.value)
    bad_schema = tmp_path / "bad_schema.toml"
    bad_schema.write_text('[[message]]\nname = "P"\ntype = 7\nfields = [\n  { name = "a", type = "u24" },\n]\n')
    with pytest.raises(SchemaError) as err:
        Server(schema=str(bad_schema))
    assert "%s:5:" % bad_schema in str(err.value)
    with pytest.raises(LayoutError):
        Layout.struct_codes("Z", "B")


# ---- round trips --------------------------------------------------------------------------


def test_echo_round_trip_with_message_classes_and_raw_frames():
    async def main():
        async with Server(messages=DEMO, host="127.0.0.1", port=0) as server:
            assert server.port and server.address == ("127.0.0.1", server.port)
            serving = asyncio.ensure_future(serve_echo(server))
            async with Client("127.0.0.1", server.port, messages=DEMO) as client:
                conn = await client.wait_connected()
                assert conn.address[0] == "127.0.0.1" and conn.address[1] == server.port
                await client.send(NumMsg(200))
                await client.send(StrMsg("hello world!"))
                # A type no class knows arrives as a raw Frame, and goes back as one.
                await client.send(Frame(9, b"\x00\xff"))
                got = [await client.receive() for _ in range(3)]
            assert got[:2] == [NumMsg(200), StrMsg("hello world!")]
            assert isinstance(got[2], Frame)
            assert (got[2].message_type, got[2].body, got[2].header) == (9, b"\x00\xff", {})
            serving.cancel()

    run(main())


def test_struct_code_layout_and_wire_bytes():
    """Layout.struct_codes gives the ancestor's header: here length u32 and type u16."""

    async def main():
        layout = Layout.struct_codes("I", "H")
        async with Server(layout=layout, messages=DEMO, host="127.0.0.1", port=0) as server:
            reader, writer = await raw_connect(server.port)
            conn = await server.accept()
            assert conn.id >= 1 and conn.peer.startswith("127.0.0.1:")
            await conn.send(NumMsg(200))
            assert await reader.readexactly(10) == b"\x00\x00\x00\x0a\x00\x01\x00\x00\x00\xc8"
            writer.write(b"\x00\x00\x00\x08\x00\x02hi")
            assert await conn.receive() == StrMsg("hi")
            writer.close()
            assert isinstance(await conn.wait_closed(), ConnectionClosed)
            assert [m async for m in conn] == []

    run(main())


def test_broadcast_reaches_fifty_clients_once():
    async def main():
        async with Server(messages=DEMO, host="127.0.0.1", port=0) as server:
            clients = [Client("127.0.0.1", server.port, messages=DEMO) for _ in range(50)]
            for client in clients:
                client.start()
            for client in clients:
                await client.wait_connected()
            while len(server.connections) < 50:
                await server.accept()
            assert server.broadcast(StrMsg("to all")) == 50
            assert server.broadcast(NumMsg(7)) == 50
            for client in clients:
                assert await client.receive() == StrMsg("to all")
                assert await client.receive() == NumMsg(7)
            for client in clients:
                await client.close()

    run(main())


def test_openflow_layout_carries_xids_both_ways():
    async def main():
        async with Server(layout="openflow", schema="openflow", host="127.0.0.1", port=0) as server:
            async with Client("127.0.0.1", server.port, layout="openflow", schema="openflow") as client:
                await client.send(SchemaMessage("ECHO_REQUEST", {"data": b"ping"}), xid=0xDEADBEEF)
                conn = await server.accept()
                request = await conn.receive()
                assert isinstance(request, SchemaMessage)
                assert request.name == "ECHO_REQUEST" and request["data"] == b"ping"
                assert request.header == {"version": 4, "xid": 0xDEADBEEF}
                await conn.send(
                    SchemaMessage("ECHO_REPLY", {"data": request["data"]}),
                    xid=request.header["xid"],
                )
                # A raw frame with header fields, of a type the schema does not name.
                conn.try_send(Frame(99, b"raw", header={"xid": 5}))
                reply = await client.receive()
                assert (reply.name, reply["data"], reply.header["xid"]) == (
                    "ECHO_REPLY", b"ping", 0xDEADBEEF,
                )
                raw = await client.receive()
                assert (raw.message_type, raw.body, raw.header) == (99, b"raw", {"version": 4, "xid": 5})
                with pytest.raises(EncodeError, match="unknown header field `nope`"):
                    conn.try_send(Frame(2), nope=1)
                with pytest.raises(EncodeError):
                    conn.try_send(SchemaMessage("ECHO_REPLY", {"bogus": 1}))

    run(main())


def test_toml_layout_and_schema_files(tmp_path):
    layout = tmp_path / "little.toml"
    layout.write_text(textwrap.dedent("""\
        byte_order = "little"
        length_counts = "body"
        header_len = 12

        [length]
        offset = 0
        type = "u32"

        [type]
        offset = 4
        type = "u16"

        [[field]]
        name = "seq"
        offset = 6
        type = "u32"
        """))
    schema = tmp_path / "reading.toml"
    schema.write_text(textwrap.dedent("""\
        [[message]]
        name = "Reading"
        type = 16
        fields = [
          { name = "sensor", type = "u16" },
          { name = "value", type = "f64" },
          { name = "ok", type = "bool" },
          { name = "mac", type = "bytes:6" },
          { name = "unit", type = "string" },
        ]
        """))
    fields = {"sensor": 3, "value": 21.5, "ok": True, "mac": b"\x00\x11\x22\x33\x44\x55", "unit": "C"}

    async def main():
        options = dict(layout=str(layout), schema=str(schema))
        async with Server(host="127.0.0.1", port=0, **options) as server:
            reader, writer = await raw_connect(server.port)
            conn = await server.accept()
            await conn.send(SchemaMessage("Reading", fields), seq=77)
            head = await reader.readexactly(12)
            length, message_type, seq = struct.unpack("<IHI", head[:10])
            assert (message_type, seq) == (16, 77)
            body = await reader.readexactly(length)
            # Numbers in the layout's byte order (little), as ltp encodes them.
            assert body == struct.pack("<Hd?", 3, 21.5, True) + fields["mac"] + b"C"
            writer.write(head + body)
            got = await conn.receive()
            assert got == SchemaMessage("Reading", fields)
            assert got.header == {"seq": 77} and got.message_type == 16
            writer.close()

    run(main())


# ---- failures -----------------------------------------------------------------------------


def test_bad_length_closes_only_that_connection_with_the_reason():
    async def main():
        async with Server(messages=DEMO, max_inbound=100, host="127.0.0.1", port=0) as server:
            serving = asyncio.ensure_future(serve_echo(server))
            async with Client("127.0.0.1", server.port, messages=DEMO) as good:
                await good.send(NumMsg(1))
                assert await good.receive() == NumMsg(1)
                # Length 1: shorter than the 3-byte header.
                short_reader, short_writer = await raw_connect(server.port)
                short_writer.write(b"\x00\x01\x01")
                # Length 1000: more than max_inbound.
                long_reader, long_writer = await raw_connect(server.port)
                long_writer.write(b"\x03\xe8\x01")
                assert await short_reader.read() == b""
                assert await long_reader.read() == b""
                await good.send(NumMsg(2))
                assert await good.receive() == NumMsg(2)
            serving.cancel()

    async def reasons():
        async with Server(messages=DEMO, max_inbound=100, host="127.0.0.1", port=0) as server:
            _, short_writer = await raw_connect(server.port)
            short_writer.write(b"\x00\x01\x01")
            short = await server.accept()
            _, long_writer = await raw_connect(server.port)
            long_writer.write(b"\x03\xe8\x01")
            long = await server.accept()
            # A NumMsg whose body is too short for its u32: its class cannot make it.
            _, bad_writer = await raw_connect(server.port)
            bad_writer.write(b"\x00\x05\x01\x00\x01")
            bad = await server.accept()
            assert [m async for m in bad] == []
            return await short.wait_closed(), await long.wait_closed(), bad.close_reason

    run(main())
    short, long, bad = run(reasons())
    assert isinstance(short, BadLength) and "smaller than the 3-byte header" in str(short)
    assert isinstance(long, FrameTooLarge) and "1000" in str(long) and "100" in str(long)
    assert isinstance(bad, DecodeError) and "NumMsg.unpack" in str(bad)


def test_send_on_an_ended_connection_raises_connection_closed():
    async def main():
        async with Server(messages=DEMO, host="127.0.0.1", port=0) as server:
            _, writer = await raw_connect(server.port)
            conn = await server.accept()
            writer.close()
            await conn.wait_closed()
            assert not conn.connected
            with pytest.raises(ConnectionClosed):
                await conn.send(NumMsg(1))
            with pytest.raises(ConnectionClosed):
                conn.try_send(NumMsg(1))
            with pytest.raises(EncodeError):
                server.broadcast(StrMsg("x" * 70000))

    run(main())


def test_back_pressure_send_waits_and_try_send_raises_while_the_peer_does_not_read():
    body = b"x" * 60000

    async def main():
        async with Server(outbox_capacity=64 * 1024, host="127.0.0.1", port=0) as server:
            reader, writer = await raw_connect(server.port)
            conn = await server.accept()
            sent = 0
            # Fill the socket buffers and then the outbox: the peer reads nothing. Until the
            # kernel's buffers are full the runtime keeps draining the outbox, so fill until
            # it is still full after the runtime had its chance.
            still_full = 0
            while still_full < 3:
                try:
                    conn.try_send(Frame(1, body + struct.pack(">I", sent)))
                    sent += 1
                    still_full = 0
                except OutboxFull:
                    still_full += 1
                    await asyncio.sleep(0.2)
            waiting = asyncio.ensure_future(conn.send(Frame(1, body + struct.pack(">I", sent))))
            for _ in range(20):
                await asyncio.sleep(0)
            # The outbox is full and nobody reads: the send cannot have completed.
            assert not waiting.done()
            with pytest.raises(OutboxFull):
                conn.try_send(Frame(1, b"behind the waiting send"))
            # Now the peer reads everything, in order; the waiting send completes.
            for expected in range(sent + 1):
                message_type, got = await read_frame(reader)
                assert got[-4:] == struct.pack(">I", expected)
            await waiting
            conn.try_send(Frame(2, b"sentinel"))
            assert await read_frame(reader) == (2, b"sentinel")
            writer.close()

    run(main())


# ---- reconnects and shutdown --------------------------------------------------------------


def test_client_reconnects_across_a_server_restart_and_loses_nothing():
    async def main():
        received = []
        server = Server(messages=DEMO, host="127.0.0.1", port=0)
        async with server:
            port = server.port
            async with Client("127.0.0.1", port, messages=DEMO, initial_delay=0.05, max_delay=0.2) as client:
                await client.wait_connected()
                for n in range(100):
                    await client.send(NumMsg(n))
                conn = await server.accept()
                while len(received) < 100:
                    received.append((await conn.receive()).num)
                await server.close()
                # Sent while the server is down: kept by the client.
                for n in range(100, 200):
                    await client.send(NumMsg(n))
                async with Server(messages=DEMO, host="127.0.0.1", port=port) as again:
                    conn = await again.accept()
                    while len(received) < 200:
                        received.append((await conn.receive()).num)
                    await client.send(StrMsg("sentinel"))
                    assert await conn.receive() == StrMsg("sentinel")
        assert received == list(range(200))

    run(main())


def test_close_flushes_what_was_sent_before_the_connections_close():
    async def main():
        server = Server(messages=DEMO, host="127.0.0.1", port=0)
        async with server:
            async with Client("127.0.0.1", server.port, messages=DEMO) as client:
                conn = await server.accept()
                for n in range(5000):
                    await conn.send(NumMsg(n))
                await server.close()
                assert isinstance(conn.close_reason, ConnectionClosed)
                got = []
                while len(got) < 5000:
                    got.append((await client.receive()).num)
                assert got == list(range(5000))
        with pytest.raises(ConnectionClosed):
            await server.accept()
        assert [c async for c in server] == []

    run(main())


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, signed by it."""
    d = str(directory)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "subjectAltName=DNS:client.test\nextendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "\nbasicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                 "-extfile", name + ".ext", cwd=d)
    return {name: os.path.join(d, name) for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_and_mutual_tls(tmp_path):
    files = make_certificates(tmp_path)
    server_tls = ServerTls(files["server.pem"], files["server.key"], client_ca=files["ca.pem"])
    good_tls = ClientTls(ca=files["ca.pem"], cert=files["client.pem"], key=files["client.key"])
    no_cert_tls = ClientTls(ca=files["ca.pem"])

    async def main():
        async with Server(messages=DEMO, tls=server_tls, host="127.0.0.1", port=0) as server:
            serving = asyncio.ensure_future(serve_echo(server))
            # Without a client certificate the server refuses it: never a connection.
            refused = Client("127.0.0.1", server.port, messages=DEMO, tls=no_cert_tls,
                             initial_delay=0.05, max_delay=0.2)
            refused.start()
            async with Client("127.0.0.1", server.port, messages=DEMO, tls=good_tls) as client:
                await client.send(StrMsg("over TLS"))
                assert await client.receive() == StrMsg("over TLS")
                assert len(server.connections) == 1
            await refused.close()
            serving.cancel()

    run(main())
    with pytest.raises(ltprotocol.ConfigError, match="nonexistent"):
        ServerTls("/nonexistent/server.pem", files["server.key"])
    with pytest.raises(ltprotocol.ConfigError):
        Server(tls=good_tls)


def test_options_default_to_the_rust_library_and_reject_nonsense():
    assert ltprotocol.DEFAULTS["outbox_capacity"] == 1024 * 1024
    assert ltprotocol.DEFAULTS["frame_read_timeout"] == 30.0
    assert ltprotocol.DEFAULTS["idle_timeout"] is None
    assert ltprotocol.DEFAULTS["max_connections"] == 100_000
    with pytest.raises(ltprotocol.ConfigError):
        Server(idle_timeout=-1)
    with pytest.raises(TypeError, match="unknown option"):
        Server(max_inbund=5)


def test_idle_timeout_closes_a_quiet_connection_with_timed_out():
    async def main():
        async with Server(idle_timeout=0.2, host="127.0.0.1", port=0) as server:
            _, writer = await raw_connect(server.port)
            conn = await server.accept()
            reason = await conn.wait_closed()
            writer.close()
            return reason

    reason = run(main())
    assert isinstance(reason, ltprotocol.TimedOut) and "idle" in str(reason)


# ---- processes ----------------------------------------------------------------------------

CHILD = textwrap.dedent("""\
    import asyncio, struct, sys
    import ltprotocol

    async def echo(conn):
        async for msg in conn:
            await conn.send(msg)

    async def main():
        async with ltprotocol.Server(host="127.0.0.1", port=0) as server:
            print(server.port, flush=True)
            tasks = []
            async for conn in server:
                tasks.append(asyncio.ensure_future(echo(conn)))

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("interrupted, closed cleanly", flush=True)
""")


def test_ctrl_c_closes_a_child_running_asyncio_run_cleanly():
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )
    try:
        port = int(child.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"\x00\x05\x09hi")
            got = b""
            while len(got) < 5:
                got += sock.recv(5 - len(got))
            assert got == b"\x00\x05\x09hi"
            child.send_signal(signal.SIGINT)
            out, _ = child.communicate(timeout=TIMEOUT)
            assert "interrupted, closed cleanly" in out
            assert child.returncode == 0
            # The connection was closed by the shutdown.
            assert sock.recv(1) == b""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_the_readme_example_runs():
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "asyncio_echo.py")],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    assert "echoed NumMsg(200)" in out.stdout
    assert "echoed StrMsg('hello world!')" in out.stdout
