"""The API of the Python package ``ltprotocol`` 0.2.1, on the Rust core.

Programs written for the ancestor run unchanged::

    from ltprotocol.ltprotocol import LTMessage, LTProtocol, LTTwistedServer, LTTwistedClient

Define messages as ``LTMessage`` subclasses (``get_type``, ``pack``, ``unpack``), gather them
in an ``LTProtocol``, and serve or connect with ``LTTwistedServer`` / ``LTTwistedClient``; then
call ``reactor.run()``. The sockets, framing, broadcast and reconnecting run on the Rust
runtime's threads; your callbacks run on Twisted's reactor thread, in order for each
connection and never two at once, with the received messages handed over in batches.

Where this differs from the ancestor (and where it improves on it) is listed in the package's
README.md. In short: a bad length closes that connection with a logged reason; a peer cannot
make the server buffer without limit; sends never block the reactor and never drop silently
(a full outbox raises ``OutboxFull``, a closed connection ``ConnectionClosed``); a slow reader
is disconnected by a broadcast rather than buffered for; the client reconnects with the Rust
library's backoff (0.5 s doubling to 30 s, reset after a connection that lasted 2 s); stopping
the reactor (Ctrl-C) flushes what was sent before the process ends.
"""

import logging
import struct

from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionLost, ConnectError
from twisted.internet.interfaces import IReadDescriptor
from twisted.python import failure, log
from zope.interface import implementer

from ltprotocol import _native
from ltprotocol._native import ConnectionClosed, EncodeError, OutboxFull

__all__ = [
    "LTMessage",
    "LTProtocol",
    "LTTwistedProtocol",
    "LTTwistedServer",
    "LTTwistedClient",
    "ConnectionClosed",
    "EncodeError",
    "OutboxFull",
    "SHUTDOWN_TIMEOUT",
]

#: Seconds a server or client waits at reactor shutdown for its connections to write what was
#: sent; what is left then is dropped (and logged by the Rust library).
SHUTDOWN_TIMEOUT = 5.0

_logger = logging.getLogger(__name__)


class LTMessage:
    """A message of a length-type protocol. Subclass it for each message type: give it a
    static ``get_type()`` (a unique integer), ``pack()`` (the body as ``bytes``) and a static
    ``unpack(body)`` that makes the message from its body."""

    @staticmethod
    def get_type():
        """The type number of this message class (a unique integer)."""
        return None

    def __init__(self):
        pass

    def pack(self):
        """The body of this message, as ``bytes`` (without the header)."""
        return b""

    @staticmethod
    def unpack(body):
        """Makes a message from its body (``bytes``)."""
        return None


class LTProtocol:
    """A protocol: its message classes, and the Python struct codes of its header's length and
    type fields (``b B h H i I l L q Q``; big-endian, standard sizes: ``l``/``L`` are 4 bytes;
    a lower-case code is a signed field). The length counts the whole message, header
    included; the type follows the length."""

    def __init__(self, msg_types, len_type="H", type_type="B"):
        #: Type number -> message class.
        self.msg_types = {}
        for msg_class in msg_types:
            self.msg_types[msg_class.get_type()] = msg_class
        self.len_type = len_type
        self.type_type = type_type
        #: The header layout the Rust core frames with (raises ``LayoutError`` for a bad code).
        self.layout = _native.Layout.struct_codes(len_type, type_type)

    def pack_with_header(self, lmt):
        """The whole message ``lmt`` as it goes on the wire: length, type, body."""
        body = lmt.pack()
        header = struct.Struct(">" + self.len_type + self.type_type)
        return header.pack(header.size + len(body), lmt.get_type()) + body

    def unpack_received_msg(self, type_val, body):
        """The message of type ``type_val`` made from ``body``, or ``None`` for a type this
        protocol does not know."""
        msg_class = self.msg_types.get(type_val)
        if msg_class is None:
            return None
        return msg_class.unpack(body)

    def _decoders(self):
        """What the native dispatcher decodes with: type -> ``unpack``, or ``None`` when a
        subclass overrides ``unpack_received_msg`` (then it is called for every message)."""
        if type(self).unpack_received_msg is not LTProtocol.unpack_received_msg:
            return None
        return {t: cls.unpack for t, cls in self.msg_types.items()}


def _address(peer):
    """Twisted's address object for a ``host:port`` string (``[v6]:port`` for IPv6)."""
    host, _, port = peer.rpartition(":")
    if host.startswith("["):
        return IPv6Address("TCP", host[1:-1], int(port))
    return IPv4Address("TCP", host, int(port))


class _Transport:
    """The little of a Twisted transport that users of the ancestor reached for."""

    __slots__ = ("_conn",)

    def __init__(self, conn):
        self._conn = conn

    def getPeer(self):
        return self._conn._address

    def loseConnection(self):
        self._conn.close()


class LTTwistedProtocol:
    """One connection, as the callbacks see it: ``send(msg)``, ``connected``, ``str(conn)``
    (the peer, as Twisted prints addresses), ``factory`` (its server or client), ``close()``.
    """

    # No __slots__: programs written for the ancestor keep their own state on connections.

    def __init__(self, factory, native, conn_id, peer):
        #: The ``LTTwistedServer`` or ``LTTwistedClient`` this connection belongs to.
        self.factory = factory
        #: The connection's number, unique within its server or client.
        self.conn_id = conn_id
        #: The peer's address as ``host:port``.
        self.peer = peer
        self._native = native
        self._address = _address(peer)
        self._open = True

    @property
    def connected(self):
        """True from before ``new_conn_callback`` until the connection ends (and at the latest
        until ``lost_conn_callback``)."""
        return self._open and self._native.is_connected(self.conn_id)

    @property
    def transport(self):
        """A stand-in for the Twisted transport: ``getPeer()`` and ``loseConnection()``."""
        return _Transport(self)

    def send(self, ltm):
        """Sends the message ``ltm`` on this connection. Never blocks: the message is queued
        in the connection's outbox and written by the Rust runtime.

        Raises ``OutboxFull`` when the outbox (1 MiB) is full (the peer reads slower than
        this program sends; nothing was queued), ``ConnectionClosed`` when the connection has
        ended, ``EncodeError`` when the message is too long for the length field."""
        self._native.send(self.conn_id, ltm.get_type(), ltm.pack())

    def close(self):
        """Closes the connection once what was sent on it is written."""
        if self.factory._is_client:
            self._native.close_connection(self.conn_id)
        else:
            self._native.close(self.conn_id)

    def __str__(self):
        return str(self._address)

    def __repr__(self):
        return "<LTTwistedProtocol #%d %s>" % (self.conn_id, self.peer)


@implementer(IReadDescriptor)
class _Reader:
    """Twisted's view of a native server's or client's event queue: when its descriptor is
    readable, the whole batch of events is dispatched on the reactor thread."""

    def __init__(self, native, events):
        self._native = native
        self._events = events
        self._fd = native.fileno()

    def fileno(self):
        return self._fd

    def doRead(self):
        self._native.dispatch(self._events)
        # None: anything else would tell Twisted the descriptor is lost.
        return None

    def connectionLost(self, reason):
        pass

    def logPrefix(self):
        return "ltprotocol"


class _Events:
    """The handler the native dispatcher calls (see NATIVE.md), for one server or client."""

    def __init__(self, owner):
        self._owner = owner

    @property
    def decoders(self):
        return self._owner.lt_protocol._decoders()

    @property
    def decode(self):
        return self._owner.lt_protocol.unpack_received_msg

    @property
    def message(self):
        return self._owner.recv_callback

    def connection(self, conn_id, peer):
        return LTTwistedProtocol(self._owner, self._owner._native, conn_id, peer)

    def connected(self, conn):
        self._owner._connected(conn)

    def disconnected(self, conn, reason):
        conn._open = False
        self._owner._disconnected(conn, reason)

    def error(self, conn, exc):
        what = "a callback" if conn is None else "a callback of %s" % (conn,)
        log.err(failure.Failure(exc), "ltprotocol: %s raised; closing its connection" % what)

    def connecting(self, attempt):
        self._owner._connecting(attempt)

    def connect_failed(self, attempt, error, retry_in):
        self._owner._connect_failed(attempt, error, retry_in)

    def closed(self):
        self._owner._closed()


class _Endpoint:
    """What servers and clients share: the native object, its reader on the reactor, and the
    shutdown that flushes before the reactor stops."""

    _is_client = False

    def __init__(self, lt_protocol, recv_callback, new_conn_callback, lost_conn_callback, verbose):
        self.lt_protocol = lt_protocol
        self.recv_callback = recv_callback
        self.new_conn_callback = (
            new_conn_callback if new_conn_callback is not None else lambda p: None
        )
        self.lost_conn_callback = (
            lost_conn_callback if lost_conn_callback is not None else lambda p: None
        )
        self.verbose = verbose
        self._native = None
        self._reader = None
        self._trigger = None
        self._stopped = None

    def _start(self, native):
        self._native = native
        self._reader = _Reader(native, _Events(self))
        reactor.addReader(self._reader)
        self._trigger = reactor.addSystemEventTrigger("before", "shutdown", self._reactor_stopping)

    def _reactor_stopping(self):
        self._trigger = None
        return self.stop()

    def stop(self, timeout=SHUTDOWN_TIMEOUT):
        """Stops gracefully (ours; the ancestor had no way): what was sent is written, then
        every connection is closed (``lost_conn_callback`` is called for each). Returns a
        Deferred that fires when done. Called by itself when the reactor stops."""
        from twisted.internet.defer import Deferred, succeed

        if self._native is None:
            return succeed(None)
        if self._stopped is None:
            self._stopped = Deferred()
            if self._trigger is not None:
                reactor.removeSystemEventTrigger(self._trigger)
                self._trigger = None
            self._begin_stop(timeout)
        # Each caller gets its own Deferred firing with the shared outcome.
        mine = Deferred()
        self._stopped.addBoth(lambda result: (mine.callback(None), result)[1])
        return mine

    def _closed(self):
        if self._reader is not None:
            reactor.removeReader(self._reader)
            self._reader = None
        if self._stopped is not None and not self._stopped.called:
            self._stopped.callback(None)

    # Client-only events; a server never has them.
    def _connecting(self, attempt):
        pass

    def _connect_failed(self, attempt, error, retry_in):
        pass


class _ConnectionList(list):
    """The server's ``connections``: a list, as the ancestor's, that remembers whether it
    changed, so that a broadcast reaches exactly its members without rebuilding their ids for
    every message. Programs may change it (the ancestor's broadcast wrote to whatever it held)."""

    def __init__(self, *args):
        list.__init__(self, *args)
        self.dirty = True

    def _changing(name):  # noqa: N805 - a helper run while the class body is made
        method = getattr(list, name)

        def changed(self, *args):
            self.dirty = True
            return method(self, *args)

        changed.__name__ = name
        return changed

    for _name in (
        "append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
        "__setitem__", "__delitem__", "__iadd__", "__imul__",
    ):
        locals()[_name] = _changing(_name)
    del _name, _changing


class LTTwistedServer(_Endpoint):
    """A server for a length-type protocol (the ancestor's Twisted server factory).

    ``recv_callback(conn, msg)`` is called for each message (``msg`` is ``None`` for a type the
    protocol does not know), ``new_conn_callback(conn)`` when a client connects,
    ``lost_conn_callback(conn)`` when it is gone. ``connections`` lists the live connections
    and ``numProtocols`` counts them. ``verbose`` logs connections coming and going (Python's
    ``logging``, as the ancestor)."""

    def __init__(
        self, lt_protocol, recv_callback, new_conn_callback=None, lost_conn_callback=None,
        verbose=True,
    ):
        _Endpoint.__init__(
            self, lt_protocol, recv_callback, new_conn_callback, lost_conn_callback, verbose
        )
        #: The live connections, in the order they were made.
        self.connections = _ConnectionList()
        self._broadcast_list = None
        self._broadcast_ids = []
        #: How many connections are live.
        self.numProtocols = 0
        #: The port listened on (known after ``listen``; useful with port 0).
        self.port = None

    def listen(self, port, interface=""):
        """Starts listening on ``port`` (0 picks a free port) on every interface, or on
        ``interface`` only (ours: an address such as ``"127.0.0.1"``). Returns the port."""
        if self._native is not None:
            raise RuntimeError("this server is already listening")
        native = _native.Server(self.lt_protocol.layout)
        self.port = native.listen(interface or "0.0.0.0", port)
        self._start(native)
        return self.port

    def send(self, ltm):
        """Sends ``ltm`` to every connection in ``connections``: packed once, queued to each.
        A connection whose outbox is full is closed as a slow reader (and logged) rather than
        stalling the others or silently missing the message. Returns how many connections it
        was queued for."""
        if self._native is None:
            return 0
        reached, slow = self._native.broadcast(ltm.get_type(), ltm.pack(), self._member_ids())
        for conn_id in slow:
            _logger.warning(
                "LTProtocol server: closing connection #%d, a slow reader: its outbox is full",
                conn_id,
            )
        if self.verbose and _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("  sent %s to %d connections", ltm, reached)
        return reached

    def _member_ids(self):
        conns = self.connections
        if (
            conns is not self._broadcast_list
            or type(conns) is not _ConnectionList
            or conns.dirty
        ):
            self._broadcast_ids = [conn.conn_id for conn in conns]
            self._broadcast_list = conns
            if type(conns) is _ConnectionList:
                conns.dirty = False
        return self._broadcast_ids

    def send_msg_to_client(self, conn, ltm):
        """Sends ``ltm`` to the connection ``conn`` only (see ``LTTwistedProtocol.send``)."""
        conn.send(ltm)

    def _connected(self, conn):
        self.numProtocols += 1
        if self.verbose:
            _logger.info(
                "Client %s has connected to the LTProtocol server (%u connections now live)",
                conn, self.numProtocols,
            )
        self.connections.append(conn)
        self.new_conn_callback(conn)

    def _disconnected(self, conn, reason):
        self.numProtocols -= 1
        if self.verbose:
            _logger.info(
                "LTProtocol server connection to %s lost (%u connections now live): %s",
                conn, self.numProtocols, reason,
            )
        self.connections.remove(conn)
        self.lost_conn_callback(conn)

    def _begin_stop(self, timeout):
        self._native.shutdown_start(timeout)


class LTTwistedClient(_Endpoint):
    """A client for a length-type protocol that reconnects by itself (the ancestor's Twisted
    ``ReconnectingClientFactory``). Same callbacks as ``LTTwistedServer``; ``connect(ip,
    port)`` starts it.

    Reconnecting follows the Rust library's backoff, not Twisted's: waits of 0.5 s doubling to
    at most 30 s (±20 % jitter), reset after a connection that lasted 2 s (Twisted: 1 s, ×e, up
    to an hour, reset on every connect). Pass ``initial_delay``, ``factor``, ``max_delay``,
    ``jitter``, ``max_attempts`` or ``reset_after`` to ``connect`` to change it."""

    _is_client = True

    def __init__(
        self, lt_protocol, recv_callback, new_conn_callback=None, lost_conn_callback=None,
        verbose=True,
    ):
        _Endpoint.__init__(
            self, lt_protocol, recv_callback, new_conn_callback, lost_conn_callback, verbose
        )
        self.ip = None
        self.port = None
        #: The live connection, or ``None`` (ours).
        self.connection = None

    def connect(self, ip, port, **backoff):
        """Starts connecting to ``ip:port`` in the background; reconnects whenever the
        connection is lost or cannot be made."""
        if self._native is not None:
            raise RuntimeError("this client is already connecting")
        self.ip = ip
        self.port = port
        self._start(_native.Client(self.lt_protocol.layout, ip, port, **backoff))

    def send(self, ltm):
        """Sends ``ltm`` on the current connection, or, while disconnected, keeps it (up to
        1 MiB) and sends it first thing after the next connection is made (ours). Raises
        ``OutboxFull`` when that queue is full, ``ConnectionClosed`` after ``stop``."""
        if self._native is None:
            raise ConnectionClosed("the client is not connecting: call connect() first")
        self._native.send_queued(ltm.get_type(), ltm.pack())

    # Twisted's ReconnectingClientFactory hooks, called as Twisted would (with no connector);
    # subclasses of the ancestor's client may override them.
    def startedConnecting(self, connector):
        if self.verbose:
            _logger.debug("Trying to connect to LT server at %s:%s", self.ip, self.port)

    def clientConnectionLost(self, connector, reason):
        if self.verbose:
            _logger.info(
                "Connection to the server at %s:%s lost: %s",
                self.ip, self.port, reason.getErrorMessage(),
            )

    def clientConnectionFailed(self, connector, reason):
        if self.verbose:
            _logger.info(
                "Connection to the server at %s:%s failed: %s",
                self.ip, self.port, reason.getErrorMessage(),
            )

    def _connecting(self, attempt):
        self.startedConnecting(None)

    def _connect_failed(self, attempt, error, retry_in):
        self.clientConnectionFailed(None, failure.Failure(ConnectError(string=error)))

    def _connected(self, conn):
        if self.verbose:
            _logger.info("Connected to the server at %s:%s", self.ip, self.port)
        self.connection = conn
        self.new_conn_callback(conn)

    def _disconnected(self, conn, reason):
        if self.connection is conn:
            self.connection = None
        self.clientConnectionLost(None, failure.Failure(ConnectionLost(reason)))
        self.lost_conn_callback(conn)

    def _begin_stop(self, timeout):
        self._native.close_start(timeout)
