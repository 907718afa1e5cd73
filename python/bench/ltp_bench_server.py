"""`ltp bench serve` written with the ancestor's API on ltprotocol-rs: an LTTwistedServer
speaking the bench wire protocol (ltp/src/cmd/bench/mod.rs), so that `ltp bench MODE --target
ADDR` measures the Python package:

    python bench/ltp_bench_server.py --listen 127.0.0.1:0     # prints {"event":"listening",...}
    ltp bench throughput --target ADDR --body-size 16 --duration 2
    ltp bench fanout --target ADDR --connections 100 --messages 20000 --body-size 64

The messages are LTMessage subclasses and recv_callback is a plain Python function (one call
per message, with the message decoded by its class's unpack), as in a program written for the
ancestor. FANOUT broadcasts with the server's own send (packed once, queued to every
connection but the sender: the sender steps out of `connections` meanwhile, as the ancestor's
bench did). Stops on SIGINT or SIGTERM.
"""

import argparse
import json
import signal
import struct
import sys

from twisted.internet import reactor

from ltprotocol.ltprotocol import LTMessage, LTProtocol, LTTwistedServer

LAYOUTS = {"ltprotocol": ("H", 3, 65_535), "u32": ("I", 5, 64 * 1024 * 1024)}


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
    """Type 2: report what was counted."""

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
    """Type 4: u64 count, u32 size: broadcast that many DATA to every other connection."""

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="ltprotocol")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    len_type, header_len, max_frame = LAYOUTS[args.layout]
    max_body = max_frame - header_len
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
                print("FANOUT body %d exceeds %d" % (msg.size, max_body), file=sys.stderr)
                conn.close()
                return
            server.connections.remove(conn)
            try:
                data = Data(bytes(msg.size))
                delivered = 0
                for _ in range(msg.count):
                    delivered += server.send(data)
                server.send(End())
            finally:
                server.connections.append(conn)
            conn.send(Report(delivered, delivered * msg.size))

    protocol = LTProtocol([Data, End, Report, Fanout, Echo], len_type, "B")
    server = LTTwistedServer(protocol, recv, new_conn, verbose=False)
    bound = server.listen(int(port), interface=host.strip("[]") or "127.0.0.1")
    print(json.dumps({"event": "listening", "addr": "%s:%d" % (host or "127.0.0.1", bound)},
                     separators=(",", ":")), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run()


if __name__ == "__main__":
    main()
