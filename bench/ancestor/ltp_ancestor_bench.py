"""The Python ancestor (ltprotocol 0.2.1 on Twisted) speaking `ltp bench`'s wire protocol.

Run it with the interpreter of the virtual environment that `bench/ancestor/setup.sh` makes
(it installs the ancestor and Twisted and applies the two Python 3 edits in place):

    bench/ancestor/.venv/bin/python bench/ancestor/ltp_ancestor_bench.py serve --listen 127.0.0.1:0
    bench/ancestor/.venv/bin/python bench/ancestor/ltp_ancestor_bench.py throughput --target ADDR --duration 2
    bench/ancestor/.venv/bin/python bench/ancestor/ltp_ancestor_bench.py pingpong   # own server, in-process

Everything on the wire goes through the ancestor's own classes: the bench messages are
`LTMessage` subclasses in one `LTProtocol`; the server is an `LTTwistedServer` (its
`recv_callback` counts, echoes and reports; FANOUT is broadcast with the server's own `send`,
which packs once and writes to every connection); every client connection is an
`LTTwistedClient` (a Twisted `ReconnectingClientFactory`, told to stop trying, so a lost
connection fails the run instead of reconnecting) and sends with the connection's `send`.
Two things are ours, not the ancestor's: the listening socket is bound with
`reactor.listenTCP(port, server, interface=HOST)` because the ancestor's `listen(port)` binds
every interface and keeps no handle to learn the port; and the one-way sender is a Twisted
pull producer on the connection's transport, sending a batch of about 19 KB per reactor turn
(DESIGN.md: the ancestor's client at its best), because the ancestor has no back-pressure of
its own and a plain loop would buffer the whole run in memory. `verbose=False` everywhere
(its default, True, formats a log line per broadcast write).

`serve` runs as it is on ltprotocol-rs too (python/: the ancestor's API on our Rust runtime),
but for how it listens (`server.listen(port, interface=HOST)`: that server is not a Twisted
factory): bench/compare.sh's `python-server` rows run it with python/.venv-test's interpreter.

The wire protocol, modes and the result line are those of `ltp bench` (see
ltp/src/cmd/bench/mod.rs): DATA 1, END 2, REPORT 3 (u64 count, u64 body bytes), FANOUT 4
(u64 count, u32 size), ECHO 5, big-endian; `--layout ltprotocol` ([length u16][type u8], the
ancestor's default) or `u32` ([length u32][type u8], the ancestor's `len_type='I'`). Every run
checks its REPORTs and echoes; exit code 0 when verified, 1 when not or on failure, 2 for bad
options.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

from twisted.internet import reactor
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from ltprotocol.ltprotocol import LTMessage, LTProtocol, LTTwistedClient, LTTwistedServer

IMPLEMENTATION = "ancestor"
CLIENT = "twisted"
# Bytes a one-way sender hands the transport per reactor turn.
SEND_BATCH_BYTES = 19 * 1024
# Connections opened before their END -> REPORT is awaited (conns, fanout).
CHUNK = 256
# Idle connections probed with a round trip after the memory is read (conns).
PROBES = 100
LAYOUTS = {"ltprotocol": ("H", 3, 65_535), "u32": ("I", 5, 64 * 1024 * 1024)}


# ---- the bench messages, as the ancestor's LTMessage subclasses ----


class Data(LTMessage):
    """Type 1: an opaque body."""

    __slots__ = ("body",)

    def __init__(self, body):
        self.body = body

    @staticmethod
    def get_type():
        return 1

    def pack(self):
        return self.body

    @staticmethod
    def unpack(body):
        return Data(body)


class End(LTMessage):
    """Type 2: report what you got."""

    @staticmethod
    def get_type():
        return 2

    def pack(self):
        return b""

    @staticmethod
    def unpack(_body):
        return End()


class Report(LTMessage):
    """Type 3: u64 count, u64 body bytes."""

    def __init__(self, count, nbytes):
        self.count = count
        self.nbytes = nbytes

    @staticmethod
    def get_type():
        return 3

    def pack(self):
        return struct.pack(">QQ", self.count, self.nbytes)

    @staticmethod
    def unpack(body):
        return Report(*struct.unpack(">QQ", body[:16]))


class Fanout(LTMessage):
    """Type 4: u64 count, u32 body size: broadcast that many DATA to every other connection."""

    def __init__(self, count, size):
        self.count = count
        self.size = size

    @staticmethod
    def get_type():
        return 4

    def pack(self):
        return struct.pack(">QI", self.count, self.size)

    @staticmethod
    def unpack(body):
        return Fanout(*struct.unpack(">QI", body[:12]))


class Echo(LTMessage):
    """Type 5: echo every later DATA on this connection."""

    @staticmethod
    def get_type():
        return 5

    def pack(self):
        return b""

    @staticmethod
    def unpack(_body):
        return Echo()


def bench_protocol(layout):
    return LTProtocol([Data, End, Report, Fanout, Echo], LAYOUTS[layout][0], "B")


def pattern_body(size, seq):
    """A body of `size` bytes (i mod 251), stamped with `seq` in its first bytes, as in Rust."""
    body = bytearray(i % 251 for i in range(size))
    stamp = struct.pack(">Q", seq)
    n = min(size, len(stamp))
    body[:n] = stamp[len(stamp) - n :]
    return bytes(body)


# ---- server ----


def start_server(host, port, layout):
    """An LTTwistedServer answering the bench protocol; returns the address it listens on."""
    max_body = LAYOUTS[layout][2] - LAYOUTS[layout][1]
    server = None

    def new_conn(conn):
        conn.count = 0
        conn.nbytes = 0
        conn.echo = False

    def recv(conn, msg):
        cls = msg.__class__
        if cls is Data:
            conn.count += 1
            conn.nbytes += len(msg.body)
            if conn.echo:
                conn.send(msg)
        elif cls is End:
            conn.send(Report(conn.count, conn.nbytes))
            conn.count = conn.nbytes = 0
        elif cls is Echo:
            conn.echo = True
        elif cls is Fanout:
            if msg.size > max_body:
                print(f"ancestor: FANOUT body {msg.size} exceeds {max_body}", file=sys.stderr)
                conn.transport.loseConnection()
                return
            # The ancestor's broadcast (`server.send`) writes to every connection; the sender
            # steps out of the list while it runs (single-threaded: nothing else sees it).
            server.connections.remove(conn)
            try:
                data = Data(bytes(msg.size))
                for _ in range(msg.count):
                    server.send(data)
                server.send(End())
                delivered = msg.count * len(server.connections)
            finally:
                server.connections.append(conn)
            conn.send(Report(delivered, delivered * msg.size))

    server = LTTwistedServer(bench_protocol(layout), recv, new_conn, verbose=False)
    if not hasattr(server, "buildProtocol"):
        # ltprotocol-rs (python/): the same API on a Rust runtime, whose server is not a
        # Twisted factory; it binds itself (backlog 1024) and says which port it got.
        return host, server.listen(port, interface=host)
    # Backlog 1024, as tokio's `TcpListener::bind`: Twisted's default of 50 makes a chunk of
    # simultaneous connects wait out SYN retransmits (setup time only, nothing measured).
    addr = reactor.listenTCP(port, server, interface=host, backlog=1024).getHost()
    return addr.host, addr.port


def serve(args):
    host, _, port = args.listen.rpartition(":")
    try:
        host, port = start_server(host.strip("[]") or "127.0.0.1", int(port), args.layout)
    except Exception as err:  # noqa: BLE001 - reported and exit code 1
        print(f"ancestor: cannot listen on {args.listen}: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"event": "listening", "addr": f"{host}:{port}"},
                     separators=(",", ":")), flush=True)
    reactor.run()
    return 0


# ---- clients ----


class Run:
    """One client workload: its connections, figures and the end of the reactor."""

    def __init__(self, args, mode):
        self.args = args
        self.mode = mode
        self.layout = args.layout
        self.protocol = bench_protocol(args.layout)
        self.header_len = LAYOUTS[args.layout][1]
        self.factories = []
        self.problems = []
        self.failure = None
        self.finished = False
        self.result = None
        self.start = None
        self.end = None

    def connect(self, on_connect, on_message):
        """Opens one connection with the ancestor's client factory. `on_connect(conn)` runs
        once connected; `on_message(conn, msg)` for each message."""

        def connected(conn):
            # The ancestor's buildProtocol calls resetDelay(), which turns retrying back on.
            factory.stopTrying()
            on_connect(conn)

        def lost(_conn):
            if not self.finished:
                self.fail(f"{self.mode}: the server closed a connection")

        factory = LTTwistedClient(self.protocol, on_message, connected, lost, verbose=False)
        factory.clientConnectionFailed = lambda _c, reason: self.fail(
            f"{self.mode}: cannot connect to {self.args.host}:{self.args.port}: "
            f"{reason.getErrorMessage()}"
        )
        # A bench run must not reconnect: a lost connection is a failed run.
        factory.stopTrying()
        factory.connect(self.args.host, self.args.port)
        self.factories.append(factory)
        return factory

    def fail(self, why):
        if self.failure is None and not self.finished:
            self.failure = why
            self.finish()

    def check_report(self, what, got, want):
        if got != want and len(self.problems) < 10:
            self.problems.append(
                f"{what}: REPORT says {got[0]} frames / {got[1]} bytes, "
                f"expected {want[0]} / {want[1]}"
            )

    def finish(self, **figures):
        if self.finished:
            return
        self.finished = True
        if self.failure is None:
            self.result = self.outcome(**figures)
        for factory in self.factories:
            factory.stopTrying()
        if reactor.running:
            reactor.stop()

    def outcome(self, messages, deliveries, latencies=None, rss=None, connections=None,
                body_size=None):
        secs = max(self.end - self.start, 0.0)
        per_sec = (lambda n: n / secs) if secs > 0 else (lambda _n: 0.0)
        body_size = self.args.body_size if body_size is None else body_size
        rate = self.mode != "conns"
        connections = self.args.connections if connections is None else connections
        if rss is None:
            rss_bytes = rss_per_conn = scope = None
        else:
            before, after, scope = rss
            rss_bytes = max(after - before, 0)
            rss_per_conn = round(rss_bytes / max(connections, 1))
        return {
            "event": "result",
            "implementation": IMPLEMENTATION,
            "mode": self.mode,
            "client": CLIENT,
            "target": self.args.target or "in-process",
            "layout": self.layout,
            "connections": connections,
            "body_size": body_size,
            "messages": messages,
            "deliveries": deliveries,
            "elapsed_secs": round(secs, 6),
            "msgs_per_sec": round(per_sec(deliveries)) if rate else None,
            "mb_per_sec": round(per_sec(deliveries * body_size) / 1e6, 1) if rate else None,
            "wire_mb_per_sec": (
                round(per_sec(deliveries * (body_size + self.header_len)) / 1e6, 1)
                if rate else None
            ),
            "latency_us": percentiles(latencies) if latencies else None,
            "rss_bytes": rss_bytes,
            "rss_per_conn_bytes": rss_per_conn,
            "rss_scope": scope,
            "verified": not self.problems,
            "problems": self.problems,
        }


def percentiles(samples):
    """Nearest-rank p50/p99/p999/max in microseconds, rounded to 0.1, as the Rust clients."""
    samples = sorted(samples)
    n = len(samples)

    def at(q):
        rank = min(max(math.ceil(q * n), 1), n) - 1
        return round(samples[rank] * 1e6, 1)

    return {"p50": at(0.50), "p99": at(0.99), "p999": at(0.999), "max": at(1.0)}


def deadline_of(args):
    return None if args.duration is None else time.perf_counter() + args.duration


@implementer(IPullProducer)
class Sender:
    """Feeds one connection DATA frames through the ancestor's `conn.send`, a batch per
    reactor turn (Twisted asks for more once the transport has written everything), until the
    deadline or the quota; then END."""

    def __init__(self, run, conn, quota, deadline, on_done):
        self.run = run
        self.conn = conn
        self.quota = quota
        self.deadline = deadline
        self.on_done = on_done
        self.data = Data(pattern_body(run.args.body_size, 0))
        frame = run.args.body_size + run.header_len
        self.batch = max(1, run.args.batch_bytes // frame)
        self.sent = 0
        self.done = False

    def resumeProducing(self):
        if self.done or self.run.finished:
            return
        send, data = self.conn.send, self.data
        n = self.batch
        if self.deadline is None:
            n = min(n, self.quota - self.sent)
        for _ in range(n):
            send(data)
        self.sent += n
        over = (self.sent >= self.quota) if self.deadline is None else (
            time.perf_counter() >= self.deadline)
        if over:
            self.done = True
            self.conn.transport.unregisterProducer()
            self.conn.send(End())
            self.on_done(self)

    def stopProducing(self):
        self.done = True


def shares(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def throughput(run):
    args = run.args
    quotas = shares(args.messages, args.connections)
    conns = []
    state = {"reports": 0, "sent": 0}

    def all_connected():
        deadline = deadline_of(args)
        run.start = time.perf_counter()
        for conn, quota in zip(conns, quotas):
            conn.sender = Sender(run, conn, quota, deadline, lambda s: None)
            conn.transport.registerProducer(conn.sender, False)

    def on_connect(conn):
        conns.append(conn)
        if len(conns) == args.connections:
            all_connected()

    def on_message(conn, msg):
        if msg.__class__ is not Report:
            return
        sent = conn.sender.sent
        run.check_report("throughput", (msg.count, msg.nbytes), (sent, sent * args.body_size))
        state["sent"] += sent
        state["reports"] += 1
        if state["reports"] == args.connections:
            run.end = time.perf_counter()
            run.finish(messages=state["sent"], deliveries=state["sent"])

    for _ in range(args.connections):
        run.connect(on_connect, on_message)


def pingpong(run):
    args = run.args
    quotas = iter(shares(args.messages, args.connections))
    conns = []
    state = {"ready": 0, "reports": 0, "sent": 0, "latencies": []}
    base = pattern_body(args.body_size, 0)

    def stamped(seq):
        stamp = struct.pack(">Q", seq)
        n = min(len(base), len(stamp))
        return stamp[len(stamp) - n :] + base[n:]

    def send_next(conn):
        if (conn.deadline is None and conn.sent >= conn.quota) or (
            conn.deadline is not None and time.perf_counter() >= conn.deadline
        ):
            conn.phase = "end"
            conn.send(End())
            return
        conn.expect = stamped(conn.sent)
        conn.t0 = time.perf_counter()
        conn.send(Data(conn.expect))

    def on_connect(conn):
        conn.phase = "setup"
        conn.sent = 0
        conn.quota = next(quotas)
        conn.latencies = []
        conns.append(conn)
        # Echo from now on; END -> REPORT proves the server echoes before timing starts.
        conn.send(Echo())
        conn.send(End())

    def on_message(conn, msg):
        cls = msg.__class__
        if cls is Data and conn.phase == "run":
            conn.latencies.append(time.perf_counter() - conn.t0)
            conn.sent += 1
            if msg.body != conn.expect:
                run.problems.append(f"round trip {conn.sent}: the echo differs from what was sent")
                conn.phase = "end"
                conn.send(End())
                return
            send_next(conn)
        elif cls is Report and conn.phase == "setup":
            conn.phase = "ready"
            state["ready"] += 1
            if state["ready"] == args.connections:
                deadline = deadline_of(args)
                run.start = time.perf_counter()
                for c in conns:
                    c.phase = "run"
                    c.deadline = deadline
                    send_next(c)
        elif cls is Report and conn.phase == "end":
            run.check_report("pingpong", (msg.count, msg.nbytes),
                             (conn.sent, conn.sent * args.body_size))
            state["sent"] += conn.sent
            state["latencies"].extend(conn.latencies)
            state["reports"] += 1
            if state["reports"] == args.connections:
                run.end = time.perf_counter()
                run.finish(messages=state["sent"], deliveries=state["sent"],
                           latencies=state["latencies"])

    for _ in range(args.connections):
        run.connect(on_connect, on_message)


def open_chunked(run, n, on_message, on_all_ready):
    """Opens `n` connections, CHUNK at a time; each sends END and counts as ready on its first
    REPORT, which must be (0, 0). Calls `on_all_ready(conns)` once all are."""
    conns = []
    state = {"opened": 0, "ready": 0}

    def on_connect(conn):
        conn.ready = False
        conns.append(conn)
        conn.send(End())

    def on_msg(conn, msg):
        if not conn.ready:
            if msg.__class__ is Report:
                conn.ready = True
                if (msg.count, msg.nbytes) != (0, 0) and len(run.problems) < 10:
                    run.problems.append("an idle connection's first REPORT was not (0, 0)")
                state["ready"] += 1
                if state["ready"] == n:
                    on_all_ready(conns)
                elif state["ready"] == state["opened"]:
                    open_more()
            return
        on_message(conn, msg)

    def open_more():
        more = min(CHUNK, n - state["opened"])
        state["opened"] += more
        for _ in range(more):
            run.connect(on_connect, on_msg)

    open_more()


def fanout(run):
    args = run.args
    n_recv = args.connections
    size = args.body_size
    received = {}
    state = {"done": 0, "report": None}

    def check_done():
        if state["done"] == n_recv and state["report"] is not None:
            run.end = received["last"]
            want = (args.messages, args.messages * size)
            for got in received["counts"]:
                if got != want and len(run.problems) < 10:
                    run.problems.append(
                        f"a receiver got {got[0]} frames / {got[1]} bytes, "
                        f"expected {want[0]} / {want[1]}"
                    )
            deliveries = args.messages * n_recv
            run.check_report("fanout", state["report"], (deliveries, deliveries * size))
            run.finish(messages=args.messages, deliveries=deliveries)

    def on_receiver(conn, msg):
        cls = msg.__class__
        if cls is Data:
            conn.count += 1
            conn.nbytes += len(msg.body)
        elif cls is End:
            received.setdefault("counts", []).append((conn.count, conn.nbytes))
            received["last"] = time.perf_counter()
            state["done"] += 1
            check_done()

    def on_control(conn, msg):
        if msg.__class__ is Report and state.get("started"):
            state["report"] = (msg.count, msg.nbytes)
            check_done()

    def receivers_ready(conns):
        for conn in conns:
            conn.count = conn.nbytes = 0
        state["started"] = True
        run.start = time.perf_counter()
        control.send(Fanout(args.messages, size))

    def control_ready(conns):
        nonlocal control
        control = conns[0]
        # Receivers are opened after the control connection is proven registered.
        open_chunked(run, n_recv, on_receiver, receivers_ready)

    control = None
    open_chunked(run, 1, on_control, control_ready)


def conns_mode(run):
    args = run.args
    pid = args.server_pid
    scope = "server-pid" if pid is not None else (
        "server-in-process" if args.target is None else "client-only")
    before = vm_rss(pid)
    state = {}

    def all_open(conns):
        run.end = time.perf_counter()
        reactor.callLater(0.2, measure, conns)

    def measure(conns):
        state["after"] = vm_rss(pid)
        step = max(len(conns) // min(PROBES, len(conns)), 1)
        state["probes"] = conns[::step][:PROBES]
        state["latencies"] = []
        state["body"] = pattern_body(16, 0)
        probe_next()

    def probe_next():
        if not state["probes"]:
            run.finish(messages=0, deliveries=0, latencies=state["latencies"],
                       rss=(before, state["after"], scope), body_size=16)
            return
        conn = state["probes"].pop(0)
        state["t0"] = time.perf_counter()
        conn.send(Echo())
        conn.send(Data(state["body"]))

    def on_message(conn, msg):
        if msg.__class__ is Data:
            state["latencies"].append(time.perf_counter() - state["t0"])
            if msg.body != state["body"] and len(run.problems) < 10:
                run.problems.append("a probe's echo differs from what was sent")
            probe_next()

    run.start = time.perf_counter()
    open_chunked(run, args.connections, on_message, all_open)


def vm_rss(pid):
    """VmRSS of a process (None = this one) in bytes, from /proc/PID/status."""
    path = f"/proc/{pid}/status" if pid is not None else "/proc/self/status"
    try:
        with open(path) as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


MODES = {"throughput": throughput, "pingpong": pingpong, "fanout": fanout, "conns": conns_mode}
# connections, body size, messages: as the Rust clients' defaults.
DEFAULTS = {
    "throughput": (1, 16, 1_000_000),
    "pingpong": (1, 16, 10_000),
    "fanout": (100, 64, 10_000),
    "conns": (1_000, 16, 0),
}


def load(args):
    mode = args.command
    connections, body_size, messages = DEFAULTS[mode]
    args.connections = connections if args.connections is None else args.connections
    args.body_size = body_size if args.body_size is None else args.body_size
    args.messages = messages if args.messages is None else args.messages
    if args.connections < 1:
        return "--connections must be at least 1"
    if args.duration is not None and mode in ("fanout", "conns"):
        return f"{mode} takes --messages, not --duration"
    if args.duration is not None and args.duration < 0:
        return f"--duration {args.duration} is not a number of seconds"
    header, largest = LAYOUTS[args.layout][1], LAYOUTS[args.layout][2]
    if args.body_size + header > largest:
        return (f"a {args.body_size}-byte body does not fit the {args.layout} layout "
                f"(largest body: {largest - header} bytes)")
    return None


def client(args):
    problem = load(args)
    if problem:
        print(f"ancestor: {problem}", file=sys.stderr)
        return 2
    if args.target is None:
        listening = start_server("127.0.0.1", 0, args.layout)
        args.host, args.port = "127.0.0.1", listening.getHost().port
    else:
        host, _, port = args.target.rpartition(":")
        args.host, args.port = host.strip("[]"), int(port)
    run = Run(args, args.command)
    reactor.callWhenRunning(MODES[args.command], run)
    reactor.run()
    if run.failure is not None:
        print(f"ancestor: {run.failure}", file=sys.stderr)
        return 1
    if run.result is None:
        print("ancestor: the run ended without a result (interrupted?)", file=sys.stderr)
        return 1
    print(json.dumps(run.result, separators=(",", ":")), flush=True)
    return 0 if run.result["verified"] else 1


def main():
    parser = argparse.ArgumentParser(
        prog="ltp_ancestor_bench.py",
        description="ltp bench's wire protocol over the Python ancestor (ltprotocol 0.2.1)")
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="counting / echoing / broadcasting server")
    srv.add_argument("--listen", default="127.0.0.1:0")
    srv.add_argument("--layout", choices=sorted(LAYOUTS), default="ltprotocol")
    for mode in MODES:
        p = sub.add_parser(mode, help=f"the {mode} workload")
        p.add_argument("--target", help="server to load; without it, one runs in this process")
        p.add_argument("--connections", type=int)
        p.add_argument("--body-size", type=int)
        group = p.add_mutually_exclusive_group()
        group.add_argument("--messages", type=int)
        group.add_argument("--duration", type=float)
        p.add_argument("--layout", choices=sorted(LAYOUTS), default="ltprotocol")
        p.add_argument("--server-pid", type=int)
        p.add_argument("--batch-bytes", type=int, default=SEND_BATCH_BYTES,
                       help="one-way: bytes handed to the transport per reactor turn")
    args = parser.parse_args()
    code = serve(args) if args.command == "serve" else client(args)
    sys.stdout.flush()
    # Skip interpreter teardown of thousands of sockets and Twisted's objects.
    os._exit(code)


if __name__ == "__main__":
    main()
