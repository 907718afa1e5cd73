"""The native core of ltprotocol-rs: servers and reconnecting clients of the Rust library
``ltprotocol``, run on one tokio runtime owned by this module, handing what happens to Python in
batches. NATIVE.md (in the source tree) describes the threading and wake-up contract."""

from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple, Union

DEFAULT_MAX_EVENTS: int
"""Default bound of an event queue, in events (16,384)."""
DEFAULT_MAX_BYTES: int
"""Default bound of an event queue, in body bytes (16 MiB)."""
DEFAULTS: Dict[str, Optional[Union[int, float]]]
"""The Rust library's defaults of ``Options``, by keyword (seconds; ``None`` is off)."""

class Error(Exception):
    """The base of every exception the package raises."""

class ConnectionClosed(Error, ConnectionError):
    """The connection is closed; also the base of the reasons a connection ended."""

class ProtocolError(ConnectionClosed):
    """The peer broke the protocol."""

class FrameTooLarge(ProtocolError):
    """The peer declared a frame longer than max_inbound."""

class BadLength(ProtocolError):
    """The peer declared a length shorter than the header, or negative."""

class DecodeError(ProtocolError):
    """A body its message class or schema cannot be made from."""

class SlowReader(ConnectionClosed):
    """A broadcast found the connection's outbox full."""

class TimedOut(ConnectionClosed, TimeoutError):
    """A frame read, idle, write or handshake timeout."""

class TlsError(ConnectionClosed):
    """The TLS handshake failed."""

class OutboxFull(Error, BlockingIOError):
    """try_send on a full outbox; nothing was queued."""

class EncodeError(Error, ValueError):
    """A message that cannot be framed; nothing was sent."""

class ConfigError(Error, ValueError):
    """An option that cannot be used."""

class LayoutError(ConfigError):
    """A header layout that cannot be built (file and line for TOML files)."""

class SchemaError(ConfigError):
    """A schema that cannot be loaded (file and line for TOML files)."""

class Layout:
    """Where a protocol's header keeps its length and type. Immutable."""

    @staticmethod
    def struct_codes(len_type: str = "H", type_type: str = "B") -> "Layout":
        """The ancestor's layout for ``LTProtocol(msgs, len_type, type_type)``: big-endian, the
        length (of the whole frame) at offset 0, the type right after it. Codes ``b B h H i I
        l L q Q`` (``l``/``L`` are 4 bytes; lower case is signed). Raises ``LayoutError``."""
    @staticmethod
    def load(spec: str) -> "Layout":
        """A preset (``"ltprotocol"``, ``"openflow"``) or the path of a TOML layout file, read
        as ``ltp --layout`` reads it. Raises ``LayoutError`` naming file and line."""
    @property
    def header_len(self) -> int:
        """The header's size in bytes: the smallest legal frame."""
    @property
    def max_frame_len(self) -> int:
        """The largest frame the length field can describe."""
    @property
    def preset(self) -> Optional[str]:
        """The preset's name, or ``None``."""
    @property
    def extra_fields(self) -> List[str]:
        """The extra header fields' names, in layout order (``["version", "xid"]``)."""

class Frame:
    """A raw frame: type number, body, extra header fields. Immutable."""

    def __init__(
        self,
        message_type: int,
        body: Optional[bytes] = None,
        header: Optional[Dict[str, int]] = None,
    ) -> None: ...
    @property
    def message_type(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def header(self) -> Dict[str, int]: ...
    def get_type(self) -> int: ...
    def pack(self) -> bytes: ...
    def __eq__(self, other: object) -> bool: ...

class Schema:
    """ltp's schema (demo, openflow, none, or a TOML file), in a layout's byte order."""

    def __init__(self, spec: str, layout: Layout) -> None: ...
    @property
    def names(self) -> List[str]: ...
    def type_of(self, name: str) -> Optional[int]: ...
    def name_of(self, message_type: int) -> Optional[str]: ...
    def decode(self, message_type: int, body: bytes) -> Optional[Tuple[str, Dict[str, Any]]]: ...
    def encode(self, name: str, fields: Dict[str, Any]) -> Tuple[int, bytes]: ...

class ServerTls:
    """A server's TLS from PEM files; client_ca asks for client certificates."""

    def __init__(
        self, cert: str, key: str, *, client_ca: Optional[str] = None, client_auth: str = "required"
    ) -> None: ...

class ClientTls:
    """A client's TLS: trusted CAs (default: the system's), server name, client certificate."""

    def __init__(
        self,
        *,
        ca: Optional[str] = None,
        server_name: Optional[str] = None,
        cert: Optional[str] = None,
        key: Optional[str] = None,
    ) -> None: ...

class Options:
    """Limits, timeouts and TLS, each defaulting to the Rust library's (DEFAULTS)."""

    def __init__(
        self,
        *,
        max_inbound: Optional[int] = None,
        max_outbound: Optional[int] = None,
        outbox_capacity: int = ...,
        frame_read_timeout: Optional[float] = ...,
        idle_timeout: Optional[float] = None,
        write_timeout: Optional[float] = ...,
        linger: float = ...,
        tls_timeout: float = ...,
        max_connections: int = ...,
        max_connections_per_ip: Optional[int] = None,
        connect_timeout: float = ...,
        inbox_messages: int = ...,
        inbox_capacity: int = ...,
        tls: Optional[Union[ServerTls, ClientTls]] = None,
    ) -> None:
        """``inbox_messages`` (1,024) and ``inbox_capacity`` (1 MiB of bodies) bound each
        connection's inbox when the server or client has ``flow_control``."""
    @property
    def tls(self) -> bool: ...


class Handler(Protocol):
    """What ``dispatch`` calls (for type checkers only: any object with these attributes).
    Its attributes are read once per batch."""

    decoders: Optional[Mapping[int, Callable[[bytes], Any]]]
    """Type number -> decoder of the body; a type without one gives ``None``. ``None`` here
    means: call ``decode`` for every message."""
    def decode(self, message_type: int, body: bytes) -> Any:
        """Used only when ``decoders`` is ``None``."""
    def connection(self, conn_id: int, peer: str) -> Any:
        """Makes the object standing for connection ``conn_id`` in the other callbacks."""
    def connected(self, conn: Any) -> None:
        """The connection is made."""
    def message(self, conn: Any, msg: Any) -> None:
        """A message arrived on ``conn`` (decoded, or ``None`` for a type without a decoder)."""
    def disconnected(self, conn: Any, reason: str) -> None:
        """The connection ended; ``reason`` is one line."""
    def error(self, conn: Any, exc: BaseException) -> None:
        """A callback raised ``exc`` (``conn`` is ``None`` if ``connection`` raised); its
        connection is closed and its later messages are not delivered."""
    # Optional, for the asyncio API:
    frames: Optional[Layout]
    """Set: ``message`` gets a ``Frame`` (header fields named by this layout); no decoding."""
    typed_reasons: bool
    """True: ``disconnected`` gets the exception saying why (a ``ConnectionClosed``)."""
    def sent(self, token: int, exc: Optional[BaseException]) -> None:
        """A ``*_later`` send finished; ``exc`` is ``None`` or why it was not queued."""

class Server:
    """A server: listens, accepts any number of clients, hands events to Python in batches."""

    def __init__(
        self,
        layout: Layout,
        *,
        max_events: int = ...,
        max_bytes: int = ...,
        options: Optional[Options] = None,
        flow_control: bool = False,
    ) -> None:
        """Not yet listening. The event queue holds at most ``max_events`` events and about
        ``max_bytes`` bytes of bodies; past that, connections stop reading (back-pressure).
        With ``flow_control``, each connection also stops reading while it holds more than
        ``options``' ``inbox_messages`` / ``inbox_capacity`` that were not ``release``\ d."""
    def listen(self, host: str, port: int) -> int:
        """Binds ``host:port`` (0: a free port), starts accepting; returns the port. Once."""
    @property
    def local_address(self) -> Optional[tuple[str, int]]:
        """The bound ``(host, port)``, or ``None`` before ``listen``."""
    def fileno(self) -> int:
        """The descriptor to watch for readability; when readable, call ``dispatch``."""
    def dispatch(self, handler: Handler) -> int:
        """Takes every queued event and calls ``handler`` with each, in order; returns how many.
        Never blocks. Must not be called from inside one of its callbacks."""
    def send(self, conn_id: int, message_type: int, body: bytes) -> None:
        """Queues one message on a connection; never waits. Raises ``OutboxFull``,
        ``ConnectionClosed`` or ``EncodeError``."""
    def broadcast(
        self, message_type: int, body: bytes, conn_ids: Optional[list[int]] = None
    ) -> tuple[int, list[int]]:
        """Sends one message, encoded once, to every live connection or to ``conn_ids``; never
        waits. Returns ``(reached, slow)``: slow readers (outbox full) are closed."""
    def try_send_frame(
        self, conn_id: int, message_type: int, body: bytes, header: Optional[Dict[str, int]] = None
    ) -> None: ...
    def send_frame_later(
        self,
        conn_id: int,
        token: int,
        message_type: int,
        body: bytes,
        header: Optional[Dict[str, int]] = None,
    ) -> None: ...
    def broadcast_frame(
        self, message_type: int, body: bytes, header: Optional[Dict[str, int]] = None
    ) -> int: ...
    def outbox_capacity(self, conn_id: int) -> Optional[int]: ...
    def close(self, conn_id: int) -> None:
        """Closes a connection once what it queued is written (with flow control: it waits
        for the program no more; messages past its inbox's bound are dropped)."""
    def release(self, conn_id: int, messages: int) -> None:
        """With flow control: the program took ``messages`` more messages of the connection
        (call it in batches); it is read again once it holds half of each bound. Never
        blocks; nothing happens for a connection that ended."""
    def inbox(self, conn_id: int) -> Optional[Tuple[int, int, bool]]:
        """With flow control: ``(messages, bytes, paused)`` the connection holds that were not
        released; ``None`` without flow control or for a connection that ended."""
    def is_connected(self, conn_id: int) -> bool:
        """Whether the connection is live."""
    def connections(self) -> list[tuple[int, str]]:
        """The live connections as ``(conn_id, peer)``, by id."""
    def shutdown_start(self, timeout: float) -> None:
        """Starts a graceful shutdown (stop accepting, write what is queued, close) and returns
        at once; keep dispatching: the disconnections follow, then ``closed()``."""
    def shutdown(self, timeout: float) -> tuple[int, int, int, int]:
        """Shuts down and waits (GIL released), for a caller that dispatches no more. Returns
        ``(connections, forced, unsent_frames, dropped_messages)``."""

class Client:
    """A client that connects in the background and reconnects with backoff."""

    def __init__(
        self,
        layout: Layout,
        host: str,
        port: int,
        *,
        initial_delay: Optional[float] = None,
        factor: Optional[float] = None,
        max_delay: Optional[float] = None,
        jitter: Optional[float] = None,
        max_attempts: Optional[int] = None,
        reset_after: Optional[float] = None,
        max_events: int = ...,
        max_bytes: int = ...,
        options: Optional[Options] = None,
        flow_control: bool = False,
    ) -> None:
        """Starts connecting at once (``flow_control``: as for ``Server``). Backoff defaults: 0.5 s, ×2, 30 s, ±20 %, unlimited
        attempts, reset after a connection that lasted 2 s."""
    def fileno(self) -> int:
        """The descriptor to watch for readability; when readable, call ``dispatch``."""
    def dispatch(self, handler: Handler) -> int:
        """As ``Server.dispatch``; also calls the handler's optional ``connecting(attempt)``,
        ``connect_failed(attempt, error, retry_in)`` and ``closed()``."""
    def send(self, conn_id: int, message_type: int, body: bytes) -> None:
        """Queues one message on that very connection; never waits."""
    def send_queued(self, message_type: int, body: bytes) -> None:
        """Queues one message on the client: kept across reconnections (up to 1 MiB)."""
    def try_send_queued_frame(
        self, message_type: int, body: bytes, header: Optional[Dict[str, int]] = None
    ) -> None: ...
    def send_queued_later(
        self, token: int, message_type: int, body: bytes, header: Optional[Dict[str, int]] = None
    ) -> None: ...
    def try_send_frame(
        self, conn_id: int, message_type: int, body: bytes, header: Optional[Dict[str, int]] = None
    ) -> None: ...
    def send_frame_later(
        self,
        conn_id: int,
        token: int,
        message_type: int,
        body: bytes,
        header: Optional[Dict[str, int]] = None,
    ) -> None: ...
    def close_connection(self, conn_id: int) -> None:
        """Closes a connection gracefully (the client then reconnects)."""
    def release(self, conn_id: int, messages: int) -> None:
        """As ``Server.release``."""
    def inbox(self, conn_id: int) -> Optional[Tuple[int, int, bool]]:
        """As ``Server.inbox``."""
    def is_connected(self, conn_id: int) -> bool:
        """Whether the connection is live."""
    @property
    def connection_id(self) -> Optional[int]:
        """The current connection's id, or ``None``."""
    def close_start(self, timeout: float) -> None:
        """Starts closing (no more sends; what is queued is written) and returns at once; keep
        dispatching until ``closed()``."""
    def close(self, timeout: float) -> tuple[int, bool, int]:
        """Closes and waits (GIL released). Returns ``(unsent_frames, graceful,
        dropped_messages)``."""
