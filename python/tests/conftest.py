"""Shared fixtures: one Twisted reactor for the tests that want it, run on its own thread.

Twisted's reactor cannot be restarted, so the tests that drive the drop-in API in-process
share one, started on first use (the ``reactor_thread`` fixture) and stopped at the end of the
session. Callbacks run on that thread, exactly as under ``reactor.run()``; the test thread sets
things up through ``ReactorThread.call`` and waits for what the callbacks record. Tests that
need a reactor of their own (shutdown, SIGINT) run a child process instead and never touch
this fixture, so test files that only use subprocesses work beside it.

Every test talks over 127.0.0.1 with ephemeral ports; every wait has a generous timeout that
only turns a hang into a failure (nothing asserts on time).
"""

import threading

import pytest

#: Seconds any single wait may take before the test fails (a hang guard, never a measure).
TIMEOUT = 60.0


class ReactorThread:
    """Twisted's reactor, running on a daemon thread."""

    def __init__(self):
        from twisted.internet import reactor

        self.reactor = reactor
        self._thread = threading.Thread(
            target=reactor.run,
            kwargs={"installSignalHandlers": False},
            name="twisted-reactor",
            daemon=True,
        )
        self._thread.start()

    def call(self, fn, *args, **kwargs):
        """Runs ``fn`` on the reactor thread and returns its result (or raises its error)."""
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self.reactor, fn, *args, **kwargs)

    def stop(self):
        self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(TIMEOUT)


@pytest.fixture(scope="session")
def reactor_thread():
    running = ReactorThread()
    yield running
    running.stop()
