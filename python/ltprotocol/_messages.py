"""Messages for the asyncio API (``ltprotocol.aio``): ``SchemaMessage``, the layouts it
accepts, and the codec that turns what arrives into message objects and message objects into
what the native core sends."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional, Tuple, Union

from ltprotocol import _native
from ltprotocol._native import DecodeError, EncodeError, Frame, Layout

#: What a message to send may be: a ``Frame``, a ``SchemaMessage``, or an object with
#: ``get_type()`` and ``pack()``.
Sendable = Any


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
