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
import os
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
from ltprotocol._native import (
    ClientTls,
    ConfigError,
    ConnectionClosed,
    DecodeError,
    EncodeError,
    Frame,
    Layout,
    OutboxFull,
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

#: What a message to send may be: a ``Frame``, a ``SchemaMessage``, or an object with
#: ``get_type()`` and ``pack()``.
Sendable = Any

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


class SchemaMessage:
    """A message of a schema (``ltp``'s ``--schema``): its name and its fields by name.

    ``SchemaMessage("NumMsg", {"num": 200})`` is sent as type 1 with body ``00 00 00 c8`` under
    the ``demo`` schema. Fields are ``int``, ``float``, ``bool``, ``str`` (``string`` fields)
    or ``bytes`` (``bytes`` and ``bytes:N`` fields). ``msg["num"]`` reads a field.
    """

    __slots__ = ("name", "fields", "header", "message_type")

    def __init__(
        self,
        name: str,
        fields: Optional[Dict[str, Any]] = None,
        *,
        header: Optional[Dict[str, int]] = None,
        message_type: Optional[int] = None,
    ) -> None:
        #: The message's name in the schema.
        self.name = name
        #: Its body's fields by name.
        self.fields: Dict[str, Any] = dict(fields) if fields else {}
        #: Its extra header fields by name (OpenFlow: ``version``, ``xid``); on a received
        #: message, every field of the layout.
        self.header: Dict[str, int] = dict(header) if header else {}
        #: Its type number (set on received messages; looked up in the schema when sent).
        self.message_type = message_type

    def __getitem__(self, field: str) -> Any:
        return self.fields[field]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SchemaMessage):
            return NotImplemented
        return self.name == other.name and self.fields == other.fields

    def __repr__(self) -> str:
        if self.header:
            return "SchemaMessage(%r, %r, header=%r)" % (self.name, self.fields, self.header)
        return "SchemaMessage(%r, %r)" % (self.name, self.fields)


def _layout(layout: Union[str, Layout, Any]) -> Layout:
    """A ``Layout`` from a preset name, a TOML layout file's path, or a ``Layout``."""
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, (str, os.PathLike)):
        return Layout.load(os.fspath(layout))
    # The ancestor's LTProtocol keeps its layout here.
    inner = getattr(layout, "layout", None)
    if isinstance(inner, Layout):
        return inner
    raise TypeError(
        "layout must be a Layout, a preset name ('ltprotocol', 'openflow') or a TOML layout "
        "file's path, not %r" % (layout,)
    )


class _Codec:
    """Turns received ``Frame``\\ s into messages, and messages into type, body and header."""

    def __init__(self, layout: Layout, messages: Iterable[Any], schema: Optional[str]) -> None:
        self.layout = layout
        self.classes: Dict[int, Any] = {}
        for cls in messages:
            self.classes[cls.get_type()] = cls
        self.schema = (
            _native.Schema(os.fspath(schema), layout) if schema is not None else None
        )
        #: Whether received messages carry header fields worth a dict.
        self.has_header = bool(layout.extra_fields)

    def decode(self, frame: Frame) -> Any:
        cls = self.classes.get(frame.message_type)
        if cls is not None:
            try:
                msg = cls.unpack(frame.body)
            except Exception as exc:
                raise DecodeError(
                    "type %d: %s.unpack raised %s: %s"
                    % (frame.message_type, cls.__name__, type(exc).__name__, exc)
                ) from exc
            if self.has_header:
                try:
                    msg.header = frame.header
                except AttributeError:
                    pass
            return msg
        if self.schema is not None:
            decoded = self.schema.decode(frame.message_type, frame.body)
            if decoded is not None:
                name, fields = decoded
                header = frame.header if self.has_header else None
                return SchemaMessage(name, fields, header=header, message_type=frame.message_type)
        return frame

    def encode(
        self, msg: Sendable, header: Dict[str, int]
    ) -> Tuple[int, bytes, Optional[Dict[str, int]]]:
        if isinstance(msg, Frame):
            message_type, body, base = msg.message_type, msg.body, msg.header
        elif isinstance(msg, SchemaMessage):
            if self.schema is None:
                raise EncodeError(
                    "%r: a SchemaMessage needs a schema (pass schema='demo', 'openflow' or a "
                    "TOML file)" % (msg.name,)
                )
            message_type, body = self.schema.encode(msg.name, msg.fields)
            base = msg.header
        else:
            try:
                message_type, body = msg.get_type(), msg.pack()
            except AttributeError:
                raise TypeError(
                    "cannot send %r: send a Frame, a SchemaMessage, or an object with "
                    "get_type() and pack()" % (msg,)
                ) from None
            base = getattr(msg, "header", None)
        if header:
            merged = dict(base) if base else {}
            merged.update(header)
            return message_type, body, merged
        return message_type, body, (base or None)


class _Sends:
    """Sends in order on one outbox: at once while it has room (``try_send``), else one at a
    time through the runtime, which waits for room and reports with ``sent``."""

    __slots__ = ("_owner", "_try", "_later", "_pending", "_ended")

    def __init__(self, owner: "_Endpoint", try_send: Any, send_later: Any) -> None:
        self._owner = owner
        self._try = try_send
        self._later = send_later
        #: (future, type, body, header) waiting for room; the first is in the runtime's hands.
        self._pending: Deque[Tuple[asyncio.Future, int, bytes, Optional[Dict[str, int]]]] = (
            collections.deque()
        )
        self._ended: Optional[BaseException] = None

    def try_send(self, message_type: int, body: bytes, header: Optional[Dict[str, int]]) -> None:
        if self._ended is not None:
            raise self._closed_error()
        if self._pending:
            raise OutboxFull("sends are waiting for room in the outbox; nothing was queued")
        self._try(message_type, body, header)

    async def send(
        self, message_type: int, body: bytes, header: Optional[Dict[str, int]]
    ) -> None:
        if self._ended is not None:
            raise self._closed_error()
        if not self._pending:
            try:
                self._try(message_type, body, header)
                return
            except OutboxFull:
                pass
        future = self._owner._loop.create_future()
        self._pending.append((future, message_type, body, header))
        if len(self._pending) == 1:
            self._hand_over()
        await future

    def _closed_error(self) -> BaseException:
        ended = self._ended
        if isinstance(ended, ConnectionClosed):
            return ConnectionClosed(str(ended))
        return ConnectionClosed("closed")

    def _hand_over(self) -> None:
        """Gives the first pending send to the runtime (skipping cancelled ones)."""
        while self._pending:
            future, message_type, body, header = self._pending[0]
            if future.cancelled():
                self._pending.popleft()
                continue
            token = self._owner._register_send(self)
            try:
                self._later(token, message_type, body, header)
            except Exception as exc:
                self._owner._sends_in_flight.pop(token, None)
                self._pending.popleft()
                future.set_exception(exc)
                continue
            return

    def sent(self, exc: Optional[BaseException]) -> None:
        """The runtime finished the first pending send."""
        if not self._pending:
            return
        future = self._pending.popleft()[0]
        if not future.done():
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)
        # Those behind it go at once while there is room, in order.
        while self._pending:
            future, message_type, body, header = self._pending[0]
            if future.cancelled():
                self._pending.popleft()
                continue
            try:
                self._try(message_type, body, header)
            except OutboxFull:
                self._hand_over()
                return
            except Exception as exc:
                self._pending.popleft()
                future.set_exception(exc)
                continue
            self._pending.popleft()
            future.set_result(None)

    def end(self, reason: BaseException) -> None:
        """No more sends: those not yet handed to the runtime fail with ``reason``."""
        self._ended = reason
        # The first one, if handed over, is answered by the runtime.
        keep = 1 if self._pending and not self._pending[0][0].done() else 0
        while len(self._pending) > keep:
            future = self._pending.pop()[0]
            if not future.done():
                future.set_exception(ConnectionClosed(str(reason)))


class _Inbox:
    """Items waiting for the application, and one waiter.

    With ``release`` (a connection's messages, under flow control), taking items gives their
    credit back to the runtime (``release(n)``), in batches: every ``step`` items, and
    whenever the inbox runs empty, so that a paused connection always resumes once the
    application has taken what it holds (see python/src/flow.rs)."""

    __slots__ = ("items", "waiter", "ended", "_release", "_step", "_taken")

    def __init__(self, release: Optional[Any] = None, step: int = 1) -> None:
        self.items: Deque[Any] = collections.deque()
        self.waiter: Optional[asyncio.Future] = None
        self.ended = False
        self._release = release
        self._step = max(1, step)
        self._taken = 0

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def put(self, item: Any) -> None:
        self.items.append(item)
        if self.waiter is not None:
            self.wake()

    def end(self) -> None:
        self.ended = True
        self.wake()

    def take(self) -> Any:
        """The next item, which must be there."""
        item = self.items.popleft()
        if self._release is not None:
            self._taken += 1
            if self._taken >= self._step or not self.items:
                taken, self._taken = self._taken, 0
                self._release(taken)
        return item

    async def get(self, loop: asyncio.AbstractEventLoop) -> Any:
        """The next item; ``StopAsyncIteration`` once ended and empty."""
        while not self.items:
            if self.ended:
                raise StopAsyncIteration
            if self.waiter is None or self.waiter.done():
                self.waiter = loop.create_future()
            await self.waiter
        return self.take()


class Connection:
    """One live connection of a ``Server`` or ``Client``.

    ``async for msg in conn`` yields its messages and ends when it ends (then
    ``close_reason`` says why). ``await conn.send(msg)`` queues a message, waiting while the
    outbox is full; ``conn.try_send(msg)`` raises ``OutboxFull`` instead. ``conn.close()``
    closes it once what was sent is written.
    """

    def __init__(self, owner: "_Endpoint", conn_id: int, peer: str) -> None:
        self._owner = owner
        #: The connection's id, unique within its server or client.
        self.id = conn_id
        #: The peer's address as ``host:port`` (``[v6]:port`` for IPv6).
        self.peer = peer
        #: Why the connection ended: a ``ConnectionClosed`` (or a subclass:
        #: ``FrameTooLarge``, ``BadLength``, ``DecodeError``, ``SlowReader``, ``TimedOut``,
        #: ``TlsError``...), or ``None`` while it is live.
        self.close_reason: Optional[ConnectionClosed] = None
        native = owner._native
        self._inbox = _Inbox(lambda n: native.release(conn_id, n), owner._release_step)
        self._failure: Optional[BaseException] = None
        self._closed = owner._loop.create_future()
        self._sends = _Sends(
            owner,
            lambda t, b, h: owner._native.try_send_frame(conn_id, t, b, h),
            lambda token, t, b, h: owner._native.send_frame_later(conn_id, token, t, b, h),
        )

    @property
    def address(self) -> Tuple[str, int]:
        """The peer's address as ``(host, port)``."""
        host, _, port = self.peer.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def connected(self) -> bool:
        """Whether the connection is live (until its end has reached the event loop)."""
        return self.close_reason is None

    @property
    def pending(self) -> int:
        """How many received messages wait for the program to take them (at most
        ``inbox_messages``: past that, the connection is paused)."""
        return len(self._inbox.items)

    @property
    def paused(self) -> bool:
        """Whether the connection is not being read because the program has not taken its
        messages (it holds ``inbox_messages`` or ``inbox_capacity``); it is read again once
        the program has taken it down to half of each. False once it has ended."""
        state = self._owner._native.inbox(self.id)
        return bool(state is not None and state[2])

    async def send(self, msg: Sendable, **header: int) -> None:
        """Queues ``msg`` (with extra header fields, e.g. ``xid=7``), waiting while the
        outbox is full (back-pressure). Messages are written in the order their sends
        began. If the waiting send is cancelled before its turn, the message is not sent.

        Raises ``ConnectionClosed`` when the connection has ended (or ends before there is
        room), ``EncodeError`` when the message cannot be framed."""
        message_type, body, fields = self._owner._codec.encode(msg, header)
        await self._sends.send(message_type, body, fields)

    def try_send(self, msg: Sendable, **header: int) -> None:
        """Queues ``msg`` if the outbox has room now; never waits.

        Raises ``OutboxFull`` (nothing was queued), ``ConnectionClosed``, ``EncodeError``."""
        message_type, body, fields = self._owner._codec.encode(msg, header)
        self._sends.try_send(message_type, body, fields)

    def close(self) -> None:
        """Closes the connection once what was sent on it is written. Does nothing on an
        ended connection."""
        if self.close_reason is None:
            self._owner._native_close(self.id)

    async def receive(self) -> Any:
        """The next message. Raises ``close_reason`` (a ``ConnectionClosed``) once the
        connection has ended and every message before the end was received."""
        try:
            return await self._inbox.get(self._owner._loop)
        except StopAsyncIteration:
            raise self._reason_error() from None

    async def wait_closed(self) -> ConnectionClosed:
        """Waits for the connection to end; returns ``close_reason``."""
        return await asyncio.shield(self._closed)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self._inbox.get(self._owner._loop)

    def _reason_error(self) -> ConnectionClosed:
        reason = self.close_reason
        return reason if reason is not None else ConnectionClosed("connection is closed")

    # Called by the endpoint's event handler.
    def _ended(self, reason: ConnectionClosed) -> None:
        if self._failure is not None:
            failure = self._failure
            if not isinstance(failure, ConnectionClosed):
                wrapped = DecodeError(str(failure))
                wrapped.__cause__ = failure
                failure = wrapped
            reason = failure
        self.close_reason = reason
        self._sends.end(reason)
        self._inbox.end()
        if not self._closed.done():
            self._closed.set_result(reason)

    def __repr__(self) -> str:
        state = "live" if self.close_reason is None else "closed: %s" % (self.close_reason,)
        return "<Connection #%d %s %s>" % (self.id, self.peer, state)


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
