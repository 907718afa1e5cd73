"""A clean shutdown: Ctrl-C (SIGINT) or reactor.stop() in a program of its own, and what it
sent is written before the process ends. Each program runs as a child process with its own
reactor, stopped by its PID only."""

import os
import signal
import socket
import subprocess
import sys

from conftest import TIMEOUT
from helpers import connect_raw, default_sigint, recv_frame, wait_closed

HERE = os.path.dirname(os.path.abspath(__file__))

# A server that greets each client with COUNT messages of 1000 bytes (about 1 MB: within the
# 1 MiB outbox, so that none is refused), then says so; Ctrl-C stops it.
SERVER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from twisted.internet import reactor
from helpers import StrMsg, demo_protocol
from ltprotocol.ltprotocol import LTTwistedServer

COUNT = int(sys.argv[2])

def greet(conn):
    for n in range(COUNT):
        conn.send(StrMsg("%04d" % n + "x" * 996))
    print("greeted", flush=True)

def lost(conn):
    print("lost", flush=True)

server = LTTwistedServer(demo_protocol(), lambda c, m: None, greet, lost, verbose=False)
print("port", server.listen(0, interface="127.0.0.1"), flush=True)
reactor.run()
print("stopped", flush=True)
"""

# A client that sends COUNT messages as soon as it is connected and stops the reactor at once.
CLIENT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from twisted.internet import reactor
from helpers import StrMsg, demo_protocol
from ltprotocol.ltprotocol import LTTwistedClient

COUNT = int(sys.argv[2])

def connected(conn):
    for n in range(COUNT):
        conn.send(StrMsg("%04d" % n + "y" * 996))
    reactor.stop()

client = LTTwistedClient(demo_protocol(), lambda c, m: None, connected, verbose=False)
client.connect("127.0.0.1", int(sys.argv[3]))
reactor.run()
print("stopped", flush=True)
"""


def spawn(program, *args):
    return subprocess.Popen(
        [sys.executable, "-c", program, HERE, *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )


def finish(child):
    """Waits for the child to exit by itself; kills it (by its PID) only if it hangs."""
    try:
        out, err = child.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        raise AssertionError("the child did not exit: %s %s" % (out, err))
    return child.returncode, out, err


def read_greeting(sock, count):
    for n in range(count):
        message_type, body = recv_frame(sock)
        assert (message_type, body[:4]) == (2, b"%04d" % n)
    assert wait_closed(sock) == b"", "nothing after the last message, then the end"


def test_sigint_stops_the_server_cleanly_after_writing_what_it_sent():
    count = 1000
    child = spawn(SERVER, count)
    try:
        line = child.stdout.readline().split()
        assert line[0] == "port", line
        sock = connect_raw(int(line[1]))
        assert child.stdout.readline().strip() == "greeted"
        # Ctrl-C while almost everything is still queued: the peer has read nothing yet.
        child.send_signal(signal.SIGINT)
        read_greeting(sock, count)
        sock.close()
    finally:
        code, out, err = finish(child)
    assert code == 0, err
    assert out.split() == ["lost", "stopped"], (out, err)


def test_reactor_stop_in_a_client_flushes_what_it_sent():
    count = 1000
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    child = spawn(CLIENT, count, listener.getsockname()[1])
    try:
        sock, _ = listener.accept()
        sock.settimeout(TIMEOUT)
        with sock:
            for n in range(count):
                message_type, body = recv_frame(sock)
                assert (message_type, body[:4]) == (2, b"%04d" % n)
            assert wait_closed(sock) == b""
    finally:
        listener.close()
        code, out, err = finish(child)
    assert code == 0, err
    assert out.split() == ["stopped"], (out, err)
