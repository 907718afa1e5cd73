"""An echo server and a client of the ancestor's demo protocol, with the asyncio API.

    python examples/asyncio_echo.py

The server echoes every message back; the client sends NumMsg(200) and StrMsg('hello
world!'), prints what comes back, and both close gracefully.
"""

import asyncio
import struct

import ltprotocol


class NumMsg:
    """Type 1: a u32 (the ancestor's LTMessage subclasses work as they are)."""

    def __init__(self, num):
        self.num = num

    @staticmethod
    def get_type():
        return 1

    def pack(self):
        return struct.pack(">I", self.num)

    @staticmethod
    def unpack(body):
        return NumMsg(struct.unpack(">I", body)[0])

    def __repr__(self):
        return "NumMsg(%d)" % self.num


class StrMsg:
    """Type 2: UTF-8 text."""

    def __init__(self, text):
        self.text = text

    @staticmethod
    def get_type():
        return 2

    def pack(self):
        return self.text.encode()

    @staticmethod
    def unpack(body):
        return StrMsg(body.decode())

    def __repr__(self):
        return "StrMsg(%r)" % self.text


async def echo(conn):
    """Sends back every message of one connection, until it ends."""
    async for msg in conn:
        await conn.send(msg)  # waits while the peer's outbox is full
    print("connection", conn.id, "from", conn.peer, "ended:", conn.close_reason)


async def main():
    async with ltprotocol.Server(messages=[NumMsg, StrMsg]) as server:
        host, port = await server.listen("127.0.0.1", 0)  # port 0: any free port
        print("listening on %s:%d" % (host, port))

        async def accept():
            async for conn in server:  # each new connection, until the server closes
                asyncio.create_task(echo(conn))

        accepting = asyncio.create_task(accept())

        async with ltprotocol.Client(host, port, messages=[NumMsg, StrMsg]) as client:
            await client.send(NumMsg(200))  # queued even before the connection is made
            await client.send(StrMsg("hello world!"))
            for _ in range(2):
                print("echoed", await client.receive())
        # Leaving the client's block closed it gracefully. Closing the server flushes what
        # it sent, ends every connection and ends `async for conn in server`.
        await server.close()
        await accepting


if __name__ == "__main__":
    asyncio.run(main())
