"""ltprotocol-rs: TCP protocols whose messages start with a length and a type, on a Rust core.

Three ways in:

* ``ltprotocol.Server`` / ``ltprotocol.Client`` (from ``ltprotocol.aio``): the asyncio API
  for new code: ``async with``, ``async for msg in conn``, ``await conn.send(msg)``,
  ``server.broadcast(msg)``, any header layout (struct codes, presets, ``ltp``'s TOML
  layouts), ``ltp``'s schemas, TLS, limits and timeouts; README.md's "asyncio API".

* ``ltprotocol.ltprotocol``: the API of the Python package ``ltprotocol`` 0.2.1 (``LTMessage``,
  ``LTProtocol``, ``LTTwistedServer``, ``LTTwistedClient``), unchanged for its users: they still
  call ``reactor.run()`` and their callbacks run on Twisted's reactor thread, while the sockets
  are served by the Rust runtime. Needs the ``twisted`` extra (``pip install
  'ltprotocol-rs[twisted]'``).
* ``ltprotocol._native``: the native core (``Layout``, ``Server``, ``Client``) that the APIs are
  built on; NATIVE.md in the source tree describes it.

Every exception the package raises is an ``ltprotocol.Error``; all are importable from here.
"""

from ltprotocol._native import (
    DEFAULTS,
    BadLength,
    ClientTls,
    ConfigError,
    ConnectionClosed,
    DecodeError,
    EncodeError,
    Error,
    Frame,
    FrameTooLarge,
    Layout,
    LayoutError,
    Options,
    OutboxFull,
    ProtocolError,
    SchemaError,
    ServerTls,
    SlowReader,
    TimedOut,
    TlsError,
)
from ltprotocol.aio import Client, Connection, SchemaMessage, Server

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS",
    "BadLength",
    "Client",
    "ClientTls",
    "ConfigError",
    "Connection",
    "ConnectionClosed",
    "DecodeError",
    "EncodeError",
    "Error",
    "Frame",
    "FrameTooLarge",
    "Layout",
    "LayoutError",
    "Options",
    "OutboxFull",
    "ProtocolError",
    "SchemaError",
    "SchemaMessage",
    "Server",
    "ServerTls",
    "SlowReader",
    "TimedOut",
    "TlsError",
    "__version__",
]
