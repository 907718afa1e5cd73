"""ltprotocol-rs: TCP protocols whose messages start with a length and a type, on a Rust core.

Two ways in:

* ``ltprotocol.ltprotocol``: the API of the Python package ``ltprotocol`` 0.2.1 (``LTMessage``,
  ``LTProtocol``, ``LTTwistedServer``, ``LTTwistedClient``), unchanged for its users: they still
  call ``reactor.run()`` and their callbacks run on Twisted's reactor thread, while the sockets
  are served by the Rust runtime. Needs the ``twisted`` extra (``pip install
  'ltprotocol-rs[twisted]'``).
* ``ltprotocol._native``: the native core (``Layout``, ``Server``, ``Client``) that the APIs are
  built on; NATIVE.md in the source tree describes it.

The exceptions raised by sends are importable from here.
"""

from ltprotocol._native import (
    ConnectionClosed,
    EncodeError,
    Layout,
    LayoutError,
    OutboxFull,
)

__version__ = "0.1.0"

__all__ = [
    "ConnectionClosed",
    "EncodeError",
    "Layout",
    "LayoutError",
    "OutboxFull",
    "__version__",
]
