"""Makes the installed ancestor (ltprotocol 0.2.1, Python 2 code) run on Python 3, in place.

Run with the virtual environment's interpreter: `python patch_ancestor.py`. Two mechanical
edits, and nothing else (the ancestor is GPL: we edit the installed copy, we ship none of it):

* `d.has_key(k)` -> `(k in d)` (`dict.has_key` is gone in Python 3);
* the receive buffers start as bytes: `self.packet = ""` and `self.buf_accum = ''` become
  `b""` / `b''` (Twisted hands `dataReceived` bytes, and `str += bytes` raises).

Idempotent: an already patched file is left alone. Exits non-zero, naming the file, when the
source is neither the expected original nor patched, then proves the result by decoding the
golden bytes of `NumMsg(200)` (00 07 01 00 00 00 c8) through the ancestor's own
`dataReceived`.
"""

import importlib.util
import pathlib
import re
import struct
import sys

HAS_KEY = re.compile(r"\b([A-Za-z_][\w.]*)\.has_key\(([^()]+)\)")
STR_BUFFER = re.compile(r"^(\s*self\.(?:packet|buf_accum)\s*=\s*)(''|\"\")\s*$", re.MULTILINE)
# What the published 0.2.1 holds: one has_key call; the protocol's `packet` and `buf_accum`
# and the client factory's two leftover `packet` resets.
EXPECTED = {"has_key": 1, "buffers": 4}


def module_path():
    spec = importlib.util.find_spec("ltprotocol")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("patch_ancestor: the ltprotocol package is not installed in this environment")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "ltprotocol.py"


def patch(path):
    source = path.read_text()
    patched, has_key = HAS_KEY.subn(r"(\2 in \1)", source)
    patched, buffers = STR_BUFFER.subn(r"\1b\2", patched)
    if (has_key, buffers) == (0, 0):
        if "(type_val in self.msg_types)" in source and "self.packet = b" in source:
            return "already patched"
        sys.exit(f"patch_ancestor: {path} is neither the original 0.2.1 nor patched")
    found = {"has_key": has_key, "buffers": buffers}
    if found != EXPECTED:
        sys.exit(f"patch_ancestor: {path}: expected edits {EXPECTED}, found {found}: not 0.2.1?")
    path.write_text(patched)
    for stale in path.parent.glob("__pycache__/ltprotocol.*.pyc"):
        stale.unlink()
    return f"patched ({has_key} has_key, {buffers} receive buffers)"


def self_test():
    from ltprotocol.ltprotocol import LTMessage, LTProtocol, LTTwistedProtocol

    class NumMsg(LTMessage):
        @staticmethod
        def get_type():
            return 1

        def __init__(self, num):
            LTMessage.__init__(self)
            self.num = num

        def pack(self):
            return struct.pack("> I", self.num)

        @staticmethod
        def unpack(body):
            return NumMsg(struct.unpack("> I", body)[0])

    class Factory:
        lt_protocol = LTProtocol([NumMsg], "H", "B")
        received = []

        def recv_callback(self, _conn, msg):
            self.received.append(msg)

    golden = b"\x00\x07\x01\x00\x00\x00\xc8"
    if Factory.lt_protocol.pack_with_header(NumMsg(200)) != golden:
        sys.exit("patch_ancestor: self-test: NumMsg(200) does not pack to 00 07 01 00 00 00 c8")
    proto = LTTwistedProtocol()
    proto.factory = Factory()
    # Split mid-header, then a whole frame plus one of an unknown type (delivered as None).
    for chunk in (golden[:1], golden[1:] + golden, b"\x00\x03\x09"):
        proto.dataReceived(chunk)
    got = [None if m is None else m.num for m in proto.factory.received]
    if got != [200, 200, None]:
        sys.exit(f"patch_ancestor: self-test: decoded {got}, expected [200, 200, None]")


def main():
    path = module_path()
    what = patch(path)
    self_test()
    print(f"patch_ancestor: {path}: {what}; self-test passed")


if __name__ == "__main__":
    main()
