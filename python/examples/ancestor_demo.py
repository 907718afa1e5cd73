"""The ancestor's demo program, written against the ancestor's API only.

`ltprotocol` 0.2.1 demonstrated itself with a test script (`tests/test_ltprotocol.py server`
and `... client`, not part of its published package); shared/DESIGN.md section 1 describes it.
This is that program, written afresh from the description, using nothing but the ancestor's
public API: run it with the ancestor installed, or with `ltprotocol-rs` installed, unchanged.

    python ancestor_demo.py server    # listens on port 9999 (every interface)
    python ancestor_demo.py client    # connects to 127.0.0.1:9999, reconnects when it must

The protocol: `NumMsg` (type 1, a big-endian u32) and `StrMsg` (type 2, a string filling the
body), `[length u16][type u8]` headers. The server sends each new client NumMsg(200),
StrMsg("hello world!") and NumMsg(7) at once and again every second while it stays
connected; the client greets the server with a StrMsg. Both print what they receive
(`client got: 200`, `server got: hello from the client`) and run until interrupted (Ctrl-C).
"""

import struct
import sys

from twisted.internet import reactor
from twisted.internet.task import LoopingCall

from ltprotocol.ltprotocol import LTMessage, LTProtocol, LTTwistedClient, LTTwistedServer

PORT = 9999


class NumMsg(LTMessage):
    @staticmethod
    def get_type():
        return 1

    def __init__(self, num):
        LTMessage.__init__(self)
        self.num = num

    def pack(self):
        return struct.pack("> I", self.num)

    @staticmethod
    def unpack(body):
        return NumMsg(struct.unpack("> I", body)[0])

    def __str__(self):
        return str(self.num)


class StrMsg(LTMessage):
    @staticmethod
    def get_type():
        return 2

    def __init__(self, text):
        LTMessage.__init__(self)
        self.str = text

    def pack(self):
        return self.str.encode("utf-8")

    @staticmethod
    def unpack(body):
        return StrMsg(body.decode("utf-8"))

    def __str__(self):
        return self.str


def say(line):
    print(line)
    sys.stdout.flush()


def run_server(proto):
    rounds = {}

    def send_round(conn):
        server.send_msg_to_client(conn, NumMsg(200))
        server.send_msg_to_client(conn, StrMsg("hello world!"))
        server.send_msg_to_client(conn, NumMsg(7))

    def on_connect(conn):
        say("server: %s connected" % conn)
        loop = LoopingCall(send_round, conn)
        rounds[id(conn)] = loop
        loop.start(1.0)  # the first round at once

    def on_lost(conn):
        say("server: %s disconnected" % conn)
        loop = rounds.pop(id(conn), None)
        if loop is not None and loop.running:
            loop.stop()

    def on_message(conn, msg):
        say("server got: %s" % msg)

    server = LTTwistedServer(proto, on_message, on_connect, on_lost, verbose=False)
    server.listen(PORT)
    say("server: listening on port %d" % PORT)


def run_client(proto):
    def on_connect(conn):
        say("client: connected to %s" % conn)
        conn.send(StrMsg("hello from the client"))

    def on_lost(conn):
        say("client: connection lost; reconnecting")

    def on_message(conn, msg):
        say("client got: %s" % msg)

    client = LTTwistedClient(proto, on_message, on_connect, on_lost, verbose=False)
    client.connect("127.0.0.1", PORT)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("server", "client"):
        sys.stderr.write("usage: %s server|client\n" % sys.argv[0])
        sys.exit(2)
    proto = LTProtocol([NumMsg, StrMsg], "H", "B")
    if sys.argv[1] == "server":
        run_server(proto)
    else:
        run_client(proto)
    reactor.run()


if __name__ == "__main__":
    main()
