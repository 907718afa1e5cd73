"""One connection of the asyncio API (``ltprotocol.aio``): ``Connection``, its ordered sends
that wait for room, and its bounded inbox."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, AsyncIterator, Deque, Dict, Optional, Tuple

from ltprotocol._messages import Sendable
from ltprotocol._native import ConnectionClosed, DecodeError, OutboxFull

if TYPE_CHECKING:
    from ltprotocol.aio import _Endpoint


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
