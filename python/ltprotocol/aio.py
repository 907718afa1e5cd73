"""The asyncio API: ``ltprotocol.Server``, ``ltprotocol.Client`` and their ``Connection``\\ s.

The sockets, framing, broadcast, TLS and reconnecting run on the Rust runtime's threads; what
happens reaches the event loop in batches through one descriptor that the loop watches
(``loop.add_reader``), never a thread hop per message. Every callback and every ``await``
resumes on the event loop's thread.

A server::

    async with ltprotocol.Server(layout="ltprotocol", messages=[NumMsg, StrMsg]) as server:
        await server.listen("127.0.0.1", 0)
        async for conn in server:            # each accepted connection
            asyncio.create_task(serve(conn))

    async def serve(conn):
        async for msg in conn:               # ends when the connection does
            await conn.send(msg)             # waits while the outbox is full

A client that reconnects by itself, keeping what is sent while it is disconnected::

    async with ltprotocol.Client("127.0.0.1", port, messages=[NumMsg, StrMsg]) as client:
        await client.send(NumMsg(1))
        async for msg in client:             # across reconnects, until closed
            ...

Messages are received as one of three kinds: an instance of one of the ``messages`` classes
(anything with ``get_type()``, ``pack()`` and a static ``unpack(body)``, such as the
ancestor's ``LTMessage`` subclasses), a ``SchemaMessage`` (with ``schema=``: ``ltp``'s
``demo``, ``openflow`` or a TOML schema file), or, for a type neither knows, a raw ``Frame``.
Any of the three can be sent, with extra header fields as keywords (``send(msg, xid=7)``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import (
    Any,
    AsyncIterator,
    Deque,
    Dict,
    Iterable,
    List,
    Optional,
    Tuple,
    Union,
)

from ltprotocol import _native
from ltprotocol._connection import Connection, _Inbox, _Sends
from ltprotocol._messages import Sendable, SchemaMessage, _Codec, _layout
from ltprotocol._native import (
    ClientTls,
    ConfigError,
    ConnectionClosed,
    Frame,
    Layout,
    ServerTls,
)

__all__ = [
    "Server",
    "Client",
    "Connection",
    "SchemaMessage",
    "DEFAULT_CLOSE_TIMEOUT",
]

#: Seconds ``close()`` waits by default for connections to write what was sent.
DEFAULT_CLOSE_TIMEOUT = 5.0

_OPTION_NAMES = (
    "max_inbound",
    "max_outbound",
    "outbox_capacity",
    "frame_read_timeout",
    "idle_timeout",
    "write_timeout",
    "linger",
    "tls_timeout",
    "max_connections",
    "max_connections_per_ip",
    "connect_timeout",
    "inbox_messages",
    "inbox_capacity",
)


class _Events:
    """What the native dispatcher calls (see python/src/dispatch.rs) for one endpoint."""

    typed_reasons = True

    def __init__(self, endpoint: "_Endpoint") -> None:
        self._endpoint = endpoint
        self.frames = endpoint._layout

    def connection(self, conn_id: int, peer: str) -> Connection:
        return Connection(self._endpoint, conn_id, peer)

    def connected(self, conn: Connection) -> None:
        self._endpoint._connected(conn)

    def message(self, conn: Connection, frame: Frame) -> None:
        conn._inbox.put(self._endpoint._codec.decode(frame))
        self._endpoint._received(conn)

    def disconnected(self, conn: Connection, reason: ConnectionClosed) -> None:
        conn._ended(reason)
        self._endpoint._disconnected(conn)

    def error(self, conn: Optional[Connection], exc: BaseException) -> None:
        # A message that could not be made: the connection is being closed; that is why.
        if conn is not None and conn._failure is None:
            conn._failure = exc
        elif conn is None:
            self._endpoint._loop.call_exception_handler(
                {"message": "ltprotocol: an event handler raised", "exception": exc}
            )

    def sent(self, token: int, exc: Optional[BaseException]) -> None:
        sends = self._endpoint._sends_in_flight.pop(token, None)
        if sends is not None:
            sends.sent(exc)

    def connecting(self, attempt: int) -> None:
        pass

    def connect_failed(self, attempt: int, error: str, retry_in: Optional[float]) -> None:
        self._endpoint._connect_failed(attempt, error, retry_in)

    def closed(self) -> None:
        self._endpoint._finished()


class _Endpoint:
    """What servers and clients share: the native object, the reader on the event loop, the
    codec, and the sends waiting for room."""

    def __init__(
        self,
        layout: Union[str, Layout, Any],
        messages: Iterable[Any],
        schema: Optional[str],
        tls: Optional[Union[ServerTls, ClientTls]],
        options: Dict[str, Any],
    ) -> None:
        unknown = set(options) - set(_OPTION_NAMES)
        if unknown:
            raise TypeError("unknown option(s): %s" % ", ".join(sorted(unknown)))
        self._layout = _layout(layout)
        if messages is None and hasattr(layout, "msg_types"):
            # The ancestor's LTProtocol: its message classes too.
            messages = layout.msg_types.values()
        self._codec = _Codec(self._layout, messages or (), schema)
        self._options = _native.Options(tls=tls, **options)
        inbox_messages = options.get("inbox_messages", _native.DEFAULTS["inbox_messages"])
        #: Received messages are given back to the runtime's flow control this many at a
        #: time (and whenever an inbox runs empty).
        self._release_step = max(1, int(inbox_messages) // 8)
        self._native: Any = None
        self._loop: Any = None
        self._fd: Optional[int] = None
        self._events = _Events(self)
        self._tokens = itertools.count(1)
        self._sends_in_flight: Dict[int, _Sends] = {}
        self._finished_future: Optional[asyncio.Future] = None

    @property
    def layout(self) -> Layout:
        """The header layout."""
        return self._layout

    def _start(self, native: Any) -> None:
        self._native = native
        self._fd = native.fileno()
        self._finished_future = self._loop.create_future()
        self._loop.add_reader(self._fd, self._dispatch)

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError("this object is bound to another event loop")
        self._loop = loop

    def _dispatch(self) -> None:
        self._native.dispatch(self._events)

    def _register_send(self, sends: _Sends) -> int:
        token = next(self._tokens)
        self._sends_in_flight[token] = sends
        return token

    def _native_close(self, conn_id: int) -> None:
        raise NotImplementedError

    def _finished(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None
        if self._finished_future is not None and not self._finished_future.done():
            self._finished_future.set_result(None)

    # Overridden where there is something to do.
    def _connected(self, conn: Connection) -> None:
        pass

    def _received(self, conn: Connection) -> None:
        pass

    def _disconnected(self, conn: Connection) -> None:
        pass

    def _connect_failed(self, attempt: int, error: str, retry_in: Optional[float]) -> None:
        pass


class Server(_Endpoint):
    """A server of a length-type protocol, for asyncio.

    ``layout``: a preset (``"ltprotocol"``, ``"openflow"``), a TOML layout file's path
    (``ltp``'s format), or a ``Layout`` (``Layout.struct_codes("I", "H")`` for the ancestor's
    struct codes). ``messages``: message classes (``get_type``, ``pack``, ``unpack``).
    ``schema``: ``"demo"``, ``"openflow"``, ``"none"`` or a TOML schema file's path; its
    messages arrive as ``SchemaMessage``. ``tls``: a ``ServerTls``. ``host``/``port``: listen
    on entering ``async with`` (else call ``listen``).

    Limits and timeouts by keyword, each defaulting to the Rust library's (see
    ``ltprotocol.DEFAULTS`` and ``Options``): ``max_inbound``, ``max_outbound``,
    ``outbox_capacity``, ``frame_read_timeout``, ``idle_timeout``, ``write_timeout``,
    ``linger``, ``tls_timeout``, ``max_connections``, ``max_connections_per_ip``.

    Flow control, per connection: ``inbox_messages`` (1,024) and ``inbox_capacity`` (1 MiB
    of bodies) bound what a connection holds that the program has not taken; past either,
    the runtime stops reading that connection (TCP slows that peer only; the others go on)
    until the program has taken it down to half of each. ``conn.pending`` and
    ``conn.paused`` show it.
    """

    def __init__(
        self,
        *,
        layout: Union[str, Layout, Any] = "ltprotocol",
        messages: Optional[Iterable[Any]] = None,
        schema: Optional[str] = None,
        tls: Optional[ServerTls] = None,
        host: Optional[str] = None,
        port: Optional[int] = None,
        **options: Any,
    ) -> None:
        if tls is not None and not isinstance(tls, ServerTls):
            raise ConfigError("a server's tls must be a ServerTls, not %r" % (tls,))
        super().__init__(layout, messages, schema, tls, options)
        self._listen_at = (host, port) if host is not None or port is not None else None
        self._accepted = _Inbox()
        self._connections: Dict[int, Connection] = {}
        self._address: Optional[Tuple[str, int]] = None
        self._closing = False

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> Tuple[str, int]:
        """Binds ``host:port`` (port 0 picks a free one) and starts accepting; returns the
        bound ``(host, port)``. Once only.

        Raises ``OSError`` when the address cannot be bound, ``ConfigError`` for bad
        options."""
        self._bind_loop()
        if self._native is not None:
            raise RuntimeError("the server is already listening")
        if self._closing:
            raise ConnectionClosed("the server is closed")
        native = _native.Server(self._layout, options=self._options, flow_control=True)
        native.listen(host, port)
        self._address = native.local_address
        self._start(native)
        return self._address

    @property
    def address(self) -> Optional[Tuple[str, int]]:
        """The bound ``(host, port)``, or ``None`` before ``listen``."""
        return self._address

    @property
    def port(self) -> Optional[int]:
        """The bound port, or ``None`` before ``listen``."""
        return self._address[1] if self._address else None

    @property
    def connections(self) -> List[Connection]:
        """The live connections, in the order they were made."""
        return list(self._connections.values())

    async def accept(self) -> Connection:
        """The next accepted connection. Raises ``ConnectionClosed`` once the server is
        closed."""
        try:
            return await self._accepted.get(self._loop or asyncio.get_running_loop())
        except StopAsyncIteration:
            raise ConnectionClosed("the server is closed") from None

    def __aiter__(self) -> AsyncIterator[Connection]:
        return self

    async def __anext__(self) -> Connection:
        """Each accepted connection, until the server is closed."""
        return await self._accepted.get(self._loop or asyncio.get_running_loop())

    def broadcast(self, msg: Sendable, **header: int) -> int:
        """Sends ``msg`` to every live connection, encoded once; returns how many it was
        queued for. Never waits: a connection whose outbox is full is closed as a slow
        reader (``SlowReader``) rather than stalling the others or losing the message.

        Raises ``EncodeError`` when the message cannot be framed."""
        message_type, body, fields = self._codec.encode(msg, header)
        if self._native is None:
            return 0
        return self._native.broadcast_frame(message_type, body, fields)

    async def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Shuts down gracefully: stops accepting, lets every connection write what was sent
        to it, then closes them (their iterations end); after ``timeout`` seconds what is
        left is closed at once. Safe to call more than once."""
        if not self._closing:
            self._closing = True
            self._accepted.end()
            if self._native is not None:
                self._native.shutdown_start(timeout)
        if self._finished_future is not None:
            await asyncio.shield(self._finished_future)

    async def __aenter__(self) -> "Server":
        self._bind_loop()
        if self._listen_at is not None and self._native is None:
            host, port = self._listen_at
            await self.listen(host or "127.0.0.1", port or 0)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def _native_close(self, conn_id: int) -> None:
        self._native.close(conn_id)

    def _connected(self, conn: Connection) -> None:
        self._connections[conn.id] = conn
        if self._closing:
            return
        self._accepted.put(conn)

    def _disconnected(self, conn: Connection) -> None:
        self._connections.pop(conn.id, None)

    def __repr__(self) -> str:
        where = "%s:%d" % self._address if self._address else "not listening"
        return "<ltprotocol.Server %s, %d connections>" % (where, len(self._connections))


class Client(_Endpoint):
    """A client of a length-type protocol that reconnects by itself, for asyncio.

    Connects to ``host:port`` in the background on entering ``async with`` (or ``start()``)
    and reconnects whenever the connection is lost or cannot be made, waiting as the Rust
    library's backoff says: ``initial_delay`` (0.5 s), ``factor`` (2), ``max_delay`` (30 s),
    ``jitter`` (0.2), ``max_attempts`` (unlimited), ``reset_after`` (2 s).

    ``await client.send(msg)`` queues on the client: written on the current connection, or
    kept while disconnected and written first thing after the next connection (nothing is
    lost across reconnects; it waits while the queue of ``outbox_capacity`` bytes is full).
    ``async for msg in client`` yields the messages of every connection in turn, until the
    client is closed. ``layout``, ``messages``, ``schema``, the limits and the flow control
    (``inbox_messages``, ``inbox_capacity``: a connection whose messages the program does
    not take stops being read) are as for ``Server``; ``tls`` is a ``ClientTls``;
    ``connect_timeout`` (10 s).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        layout: Union[str, Layout, Any] = "ltprotocol",
        messages: Optional[Iterable[Any]] = None,
        schema: Optional[str] = None,
        tls: Optional[ClientTls] = None,
        initial_delay: Optional[float] = None,
        factor: Optional[float] = None,
        max_delay: Optional[float] = None,
        jitter: Optional[float] = None,
        max_attempts: Optional[int] = None,
        reset_after: Optional[float] = None,
        **options: Any,
    ) -> None:
        if tls is not None and not isinstance(tls, ClientTls):
            raise ConfigError("a client's tls must be a ClientTls, not %r" % (tls,))
        super().__init__(layout, messages, schema, tls, options)
        #: The server's host and port.
        self.host = host
        self.port = port
        self._backoff = dict(
            initial_delay=initial_delay,
            factor=factor,
            max_delay=max_delay,
            jitter=jitter,
            max_attempts=max_attempts,
            reset_after=reset_after,
        )
        #: The live connection, or ``None`` while disconnected.
        self.connection: Optional[Connection] = None
        #: The last failed attempt's error, or ``None``.
        self.last_error: Optional[str] = None
        self._connections: Deque[Connection] = collections.deque()
        self._changed: Optional[asyncio.Future] = None
        self._connected_waiters: List[asyncio.Future] = []
        self._sends: Optional[_Sends] = None
        self._closing = False
        self._done = False

    def start(self) -> None:
        """Starts connecting (``async with`` calls it). Must run on the event loop."""
        self._bind_loop()
        if self._native is not None:
            return
        native = _native.Client(
            self._layout,
            self.host,
            self.port,
            options=self._options,
            flow_control=True,
            **self._backoff,
        )
        self._sends = _Sends(
            self,
            native.try_send_queued_frame,
            native.send_queued_later,
        )
        self._start(native)

    @property
    def connected(self) -> bool:
        """Whether a connection is live."""
        return self.connection is not None

    @property
    def pending(self) -> int:
        """How many received messages wait for the program to take them, over the
        connections not yet read to their end (each holds at most ``inbox_messages``: past
        that, it is paused)."""
        return sum(len(conn._inbox.items) for conn in self._connections)

    async def wait_connected(self, timeout: Optional[float] = None) -> Connection:
        """The live connection, waiting for one if need be. Raises ``asyncio.TimeoutError``
        after ``timeout`` seconds, ``ConnectionClosed`` once the client is closed or gave
        up."""
        if self.connection is not None:
            return self.connection
        if self._closing or self._done:
            raise ConnectionClosed("the client is closed")
        future = self._loop.create_future()
        self._connected_waiters.append(future)
        return await asyncio.wait_for(future, timeout)

    async def send(self, msg: Sendable, **header: int) -> None:
        """Queues ``msg`` on the client (with extra header fields as keywords), waiting while
        its queue is full; kept across reconnects. Raises ``ConnectionClosed`` after
        ``close``, ``EncodeError`` when the message cannot be framed."""
        message_type, body, fields = self._codec.encode(msg, header)
        if self._sends is None:
            raise ConnectionClosed("the client is not started: use async with, or start()")
        await self._sends.send(message_type, body, fields)

    def try_send(self, msg: Sendable, **header: int) -> None:
        """Queues ``msg`` if the client's queue has room now; never waits. Raises
        ``OutboxFull``, ``ConnectionClosed``, ``EncodeError``."""
        message_type, body, fields = self._codec.encode(msg, header)
        if self._sends is None:
            raise ConnectionClosed("the client is not started: use async with, or start()")
        self._sends.try_send(message_type, body, fields)

    async def receive(self) -> Any:
        """The next message, from whichever connection. Raises ``ConnectionClosed`` once
        the client is closed and every message was received."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise ConnectionClosed("the client is closed") from None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        """The messages of every connection in turn, until the client is closed."""
        while True:
            while self._connections:
                inbox = self._connections[0]._inbox
                if inbox.items:
                    return inbox.take()
                if not inbox.ended:
                    break
                self._connections.popleft()
            else:
                if self._done or (self._closing and self._native is None):
                    raise StopAsyncIteration
            if self._changed is None or self._changed.done():
                self._changed = (self._loop or asyncio.get_running_loop()).create_future()
            await self._changed

    async def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Closes gracefully: no more sends; what was queued is written (connecting again if
        need be) until ``timeout`` seconds, then the connection is closed."""
        if not self._closing:
            self._closing = True
            if self._native is not None:
                self._native.close_start(timeout)
        if self._finished_future is not None:
            await asyncio.shield(self._finished_future)
        self._done = True
        self._wake()

    async def __aenter__(self) -> "Client":
        self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def _native_close(self, conn_id: int) -> None:
        self._native.close_connection(conn_id)

    def _wake(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            if not changed.done():
                changed.set_result(None)

    def _connected(self, conn: Connection) -> None:
        self.connection = conn
        self.last_error = None
        self._connections.append(conn)
        waiters, self._connected_waiters = self._connected_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(conn)
        self._wake()

    def _received(self, conn: Connection) -> None:
        if self._changed is not None:
            self._wake()

    def _disconnected(self, conn: Connection) -> None:
        if self.connection is conn:
            self.connection = None
        self._wake()

    def _connect_failed(self, attempt: int, error: str, retry_in: Optional[float]) -> None:
        self.last_error = error
        if retry_in is None:
            # The client gave up (max_attempts).
            self._fail_waiters(ConnectionClosed("gave up connecting: %s" % error))

    def _fail_waiters(self, exc: BaseException) -> None:
        waiters, self._connected_waiters = self._connected_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def _finished(self) -> None:
        super()._finished()
        self._done = True
        if self._sends is not None:
            self._sends.end(ConnectionClosed("the client is closed"))
        self._fail_waiters(ConnectionClosed("the client is closed"))
        self._wake()

    def __repr__(self) -> str:
        state = "connected" if self.connection is not None else "disconnected"
        return "<ltprotocol.Client %s:%d %s>" % (self.host, self.port, state)
