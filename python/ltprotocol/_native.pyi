"""Type stubs of ``ltprotocol._native``, the package's native core (python/src/*.rs)."""

from typing import Any, Dict, List, Optional, Tuple, Union

DEFAULT_MAX_EVENTS: int
DEFAULT_MAX_BYTES: int
#: The Rust library's defaults of ``Options``, by keyword (seconds; ``None`` is off).
DEFAULTS: Dict[str, Optional[Union[int, float]]]

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
    """A header layout (the Rust library's HeaderLayout). Immutable."""

    @staticmethod
    def struct_codes(len_type: str = "H", type_type: str = "B") -> Layout: ...
    @staticmethod
    def load(spec: str) -> Layout: ...
    @property
    def header_len(self) -> int: ...
    @property
    def max_frame_len(self) -> int: ...
    @property
    def preset(self) -> Optional[str]: ...
    @property
    def extra_fields(self) -> List[str]: ...
    def __eq__(self, other: object) -> bool: ...

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
        tls: Optional[Union[ServerTls, ClientTls]] = None,
    ) -> None: ...
    @property
    def tls(self) -> bool: ...

class Server:
    """A server whose events reach Python in batches through fileno()/dispatch()."""

    def __init__(
        self,
        layout: Layout,
        *,
        max_events: int = ...,
        max_bytes: int = ...,
        options: Optional[Options] = None,
    ) -> None: ...
    def listen(self, host: str, port: int) -> int: ...
    @property
    def local_address(self) -> Optional[Tuple[str, int]]: ...
    def fileno(self) -> int: ...
    def dispatch(self, handler: Any) -> int: ...
    def send(self, conn_id: int, message_type: int, body: bytes) -> None: ...
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
    def broadcast(self, message_type: int, body: bytes) -> int: ...
    def broadcast_frame(
        self, message_type: int, body: bytes, header: Optional[Dict[str, int]] = None
    ) -> int: ...
    def outbox_capacity(self, conn_id: int) -> Optional[int]: ...
    def close(self, conn_id: int) -> None: ...
    def is_connected(self, conn_id: int) -> bool: ...
    def connections(self) -> List[Tuple[int, str]]: ...
    def shutdown_start(self, timeout: float) -> None: ...
    def shutdown(self, timeout: float) -> Tuple[int, int, int, int]: ...

class Client:
    """A reconnecting client whose events reach Python through fileno()/dispatch()."""

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
    ) -> None: ...
    def fileno(self) -> int: ...
    def dispatch(self, handler: Any) -> int: ...
    def send(self, conn_id: int, message_type: int, body: bytes) -> None: ...
    def send_queued(self, message_type: int, body: bytes) -> None: ...
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
    def close_connection(self, conn_id: int) -> None: ...
    def is_connected(self, conn_id: int) -> bool: ...
    @property
    def connection_id(self) -> Optional[int]: ...
    def close_start(self, timeout: float) -> None: ...
    def close(self, timeout: float) -> Tuple[int, bool, int]: ...
