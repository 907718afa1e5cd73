"""What the tests share: the ancestor's demo messages, a recorder of callbacks, raw sockets."""

import signal
import socket
import struct
import threading

from conftest import TIMEOUT
from ltprotocol.ltprotocol import LTMessage, LTProtocol


class NumMsg(LTMessage):
    """Type 1: a u32, big-endian (the ancestor's demo message)."""

    def __init__(self, num):
        self.num = num

    @staticmethod
    def get_type():
        return 1

    def pack(self):
        return struct.pack(">I", self.num)

    @staticmethod
    def unpack(body):
        return NumMsg(struct.unpack(">I", body)[0])

    def __eq__(self, other):
        return isinstance(other, NumMsg) and other.num == self.num

    def __hash__(self):
        return hash((NumMsg, self.num))

    def __repr__(self):
        return "NumMsg(%d)" % self.num


class StrMsg(LTMessage):
    """Type 2: a string filling the rest of the body (the ancestor's demo message)."""

    def __init__(self, text):
        self.text = text

    @staticmethod
    def get_type():
        return 2

    def pack(self):
        return self.text.encode()

    @staticmethod
    def unpack(body):
        return StrMsg(body.decode())

    def __eq__(self, other):
        return isinstance(other, StrMsg) and other.text == self.text

    def __hash__(self):
        return hash((StrMsg, self.text))

    def __repr__(self):
        return "StrMsg(%r)" % self.text


def demo_protocol(len_type="H", type_type="B"):
    return LTProtocol([NumMsg, StrMsg], len_type, type_type)


def describe(msg):
    """A message as a comparable value: ('num', 200), ('str', 'hi'), or None."""
    if msg is None:
        return None
    if isinstance(msg, NumMsg):
        return ("num", msg.num)
    if isinstance(msg, StrMsg):
        return ("str", msg.text)
    return ("other", msg)


class Recorder:
    """Callbacks that record what happened, from any thread, and waits on it."""

    def __init__(self):
        self.events = []
        self._cond = threading.Condition()
        self.threads = set()

    def add(self, event):
        with self._cond:
            self.threads.add(threading.get_ident())
            self.events.append(event)
            self._cond.notify_all()

    # The ancestor's three callbacks.
    def recv(self, conn, msg):
        self.add(("msg", conn, describe(msg)))

    def new_conn(self, conn):
        self.add(("new", conn))

    def lost_conn(self, conn):
        self.add(("lost", conn))

    def wait_for(self, predicate, what="the expected callbacks"):
        """Waits until ``predicate(events)`` holds; returns a copy of the events."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.events), TIMEOUT):
                raise AssertionError("timed out waiting for %s; got %r" % (what, self.events))
            return list(self.events)

    def wait_count(self, kind, n):
        return self.wait_for(
            lambda events: sum(1 for e in events if e[0] == kind) >= n,
            "%d %r callbacks" % (n, kind),
        )

    def of_kind(self, kind):
        with self._cond:
            return [e for e in self.events if e[0] == kind]


def frame(message_type, body, len_type="H", type_type="B"):
    """A whole frame, built with Python's struct as the ancestor built them."""
    header = struct.Struct(">" + len_type + type_type)
    return header.pack(header.size + len(body), message_type) + body


def connect_raw(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def recv_frame(sock, len_type="H", type_type="B"):
    """One frame from a raw socket: (type, body)."""
    header = struct.Struct(">" + len_type + type_type)
    length, message_type = header.unpack(recv_exact(sock, header.size))
    return message_type, recv_exact(sock, length - header.size)


def wait_closed(sock):
    """Reads until the peer closes; returns what arrived before."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def default_sigint():
    """For `subprocess.Popen(preexec_fn=...)`: the child starts with SIGINT at its default, so
    that Ctrl-C (a SIGINT by PID) reaches it even when the tests run where SIGINT is ignored
    (a background job of a non-interactive shell): Python, and so Twisted and asyncio, leave an
    ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
