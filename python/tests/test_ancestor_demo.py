"""The ancestor's demo program (examples/ancestor_demo.py), unchanged, on this package.

It runs with `ltprotocol-rs` installed (this interpreter) and interoperates both ways with
the published ancestor `ltprotocol` 0.2.1 on Twisted (another interpreter, made by
bench/ancestor/setup.sh) and with `ltp demo`. Every pair runs as separate processes over
127.0.0.1:9999, the demo's fixed port; each is stopped by its own PID with SIGINT (Ctrl-C),
and must exit cleanly.

Environment:
    LTP_ANCESTOR_PYTHON  the ancestor's interpreter (bench/ancestor/.venv/bin/python)
    LTP_BIN              the `ltp` binary (target/release/ltp)
    LTP_REQUIRE_PEERS    set (as CI does): a missing peer fails the test instead of skipping it
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from helpers import default_sigint

DEMO = pathlib.Path(__file__).resolve().parent.parent / "examples" / "ancestor_demo.py"
# Generous: the machine may be loaded; nothing here is timed, only bounded.
WAIT = 30.0
ROUND = ("client got: 200", "client got: hello world!", "client got: 7")
GREETING = "server got: hello from the client"


def peer(env_name):
    """The path an environment variable names, or a skip (a failure under LTP_REQUIRE_PEERS)."""
    path = os.environ.get(env_name)
    if path and os.path.exists(path):
        return path
    message = "%s is not set to an existing file" % env_name
    if os.environ.get("LTP_REQUIRE_PEERS"):
        pytest.fail(message)
    pytest.skip(message)


def command(side, role):
    """The command line of one half: side is ours, ancestor or ltp; role server or client."""
    if side == "ours":
        return [sys.executable, str(DEMO), role]
    if side == "ancestor":
        return [peer("LTP_ANCESTOR_PYTHON"), str(DEMO), role]
    return [peer("LTP_BIN"), "demo", role]


class Half:
    """One running half of the demo, its output collected in a file."""

    def __init__(self, side, role, tmp_path):
        self.name = "%s %s" % (side, role)
        self.path = tmp_path / ("%s-%s-%d.out" % (side, role, time.monotonic_ns()))
        self.out = open(self.path, "wb")
        self.proc = subprocess.Popen(
            command(side, role),
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            cwd=str(tmp_path),
            env=dict(os.environ, LTP_LOG="warn", PYTHONUNBUFFERED="1"),
            preexec_fn=default_sigint,
        )

    def text(self):
        return self.path.read_text(errors="replace")

    def wait_for(self, predicate, what):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            text = self.text()
            if predicate(text):
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail("%s: %s did not happen; its output:\n%s" % (self.name, what, self.text()))

    def wait_listening(self):
        self.wait_for(lambda text: "server: listening" in text, "listening")

    def interrupt(self):
        """Ctrl-C by PID; the half must exit by itself, with status 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("%s did not exit after SIGINT; output:\n%s" % (self.name, self.text()))
        self.out.close()
        assert code == 0, "%s exited %s; output:\n%s" % (self.name, code, self.text())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def rounds(text):
    """Complete rounds a client printed."""
    return text.count(ROUND[2])


@pytest.fixture
def halves(tmp_path):
    started = []

    def start(side, role):
        half = Half(side, role, tmp_path)
        started.append(half)
        return half

    yield start
    for half in started:
        half.kill()


@pytest.mark.parametrize(
    "server_side,client_side",
    [
        ("ours", "ours"),
        ("ours", "ancestor"),
        ("ancestor", "ours"),
        ("ours", "ltp"),
        ("ltp", "ours"),
    ],
)
def test_demo_pair(halves, server_side, client_side):
    server = halves(server_side, "server")
    server.wait_listening()
    client = halves(client_side, "client")
    # The first round comes at once, the next a second later: two prove the timer too.
    text = client.wait_for(lambda text: rounds(text) >= 2, "two rounds received")
    for line in ROUND:
        assert line in text
    # Nothing but whole rounds, in order: every round is 200, hello world!, 7.
    got = [line for line in text.splitlines() if line.startswith("client got: ")]
    whole = got[: 3 * rounds(text)]
    assert whole == list(ROUND) * rounds(text), got
    server.wait_for(lambda text: GREETING in text, "the client's greeting received")
    client.interrupt()
    server.interrupt()


def test_our_client_rides_out_ancestor_server_restarts(halves):
    """The ancestor's server goes away twice; our reconnecting client carries on each time."""
    client = None
    for restart in range(3):
        server = halves("ancestor", "server")
        server.wait_listening()
        if client is None:
            client = halves("ours", "client")
        before = rounds(client.text())
        client.wait_for(lambda text: rounds(text) >= before + 1, "a round from server %d" % restart)
        server.wait_for(lambda text: GREETING in text, "the greeting after restart %d" % restart)
        server.interrupt()
    client.interrupt()
