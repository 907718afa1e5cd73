"""LTTwistedClient: talking to a server both ways, and reconnecting across server restarts
with nothing lost."""

from helpers import NumMsg, Recorder, StrMsg, demo_protocol
from ltprotocol.ltprotocol import LTTwistedClient, LTTwistedServer


def start_server(reactor_thread, recorder, port=0):
    server = LTTwistedServer(
        demo_protocol(), recorder.recv, recorder.new_conn, recorder.lost_conn, verbose=False
    )
    bound = reactor_thread.call(server.listen, port, interface="127.0.0.1")
    return server, bound


def test_client_and_server_talk_both_ways_like_the_ancestors_demo(reactor_thread):
    # The ancestor's demo: the server greets every new client with three messages.
    server_side = Recorder()
    greeting = [NumMsg(200), StrMsg("hello world!"), NumMsg(7)]

    def greet(conn):
        server_side.new_conn(conn)
        for msg in greeting:
            conn.send(msg)

    server = LTTwistedServer(demo_protocol(), server_side.recv, greet, server_side.lost_conn,
                             verbose=False)
    port = reactor_thread.call(server.listen, 0, interface="127.0.0.1")

    client_side = Recorder()
    client = LTTwistedClient(demo_protocol(), client_side.recv, client_side.new_conn,
                             client_side.lost_conn, verbose=False)
    reactor_thread.call(client.connect, "127.0.0.1", port)
    events = client_side.wait_count("msg", 3)
    assert [e[2] for e in events if e[0] == "msg"] == [
        ("num", 200), ("str", "hello world!"), ("num", 7)
    ]
    conn = events[0][1]
    assert conn.connected and client.connection is conn
    reactor_thread.call(conn.send, StrMsg("thanks"))
    reactor_thread.call(client.send, NumMsg(9))
    events = server_side.wait_count("msg", 2)
    assert [e[2] for e in events if e[0] == "msg"] == [("str", "thanks"), ("num", 9)]
    reactor_thread.call(client.stop)
    client_side.wait_count("lost", 1)
    server_side.wait_count("lost", 1)
    reactor_thread.call(server.stop)


def test_reconnect_across_server_restarts_loses_nothing(reactor_thread):
    first_side = Recorder()
    first, port = start_server(reactor_thread, first_side)

    client_side = Recorder()
    client = LTTwistedClient(demo_protocol(), client_side.recv, client_side.new_conn,
                             client_side.lost_conn, verbose=False)
    # Retry quickly: the test waits for reconnections, not for the default backoff.
    reactor_thread.call(client.connect, "127.0.0.1", port, initial_delay=0.05, max_delay=0.2)

    def send_range(start, stop):
        for n in range(start, stop):
            client.send(NumMsg(n))

    # Sent before the first connection is even made: queued, then written.
    reactor_thread.call(send_range, 0, 100)
    first_side.wait_count("msg", 100)
    client_side.wait_count("new", 1)

    for restart in range(2):
        # The server goes away (flushing); the client notices and keeps what is sent meanwhile.
        reactor_thread.call(first.stop)
        client_side.wait_count("lost", restart + 1)
        base = 100 * (restart + 1)
        reactor_thread.call(send_range, base, base + 100)
        # The same port again, a new server: what was queued arrives, in order.
        second_side = Recorder()
        first, _ = start_server(reactor_thread, second_side, port)
        events = second_side.wait_count("msg", 100)
        assert [e[2] for e in events if e[0] == "msg"] == [("num", n) for n in range(base, base + 100)]
        client_side.wait_count("new", restart + 2)
        first_side = second_side

    assert [e[2] for e in first_side.of_kind("msg")][-1] == ("num", 299)
    reactor_thread.call(client.stop)
    reactor_thread.call(first.stop)


def test_client_decodes_unknown_types_as_none(reactor_thread):
    server_side = Recorder()

    class Odd(StrMsg):
        @staticmethod
        def get_type():
            return 42

    server = LTTwistedServer(
        demo_protocol(), server_side.recv,
        lambda conn: (conn.send(Odd("?")), conn.send(NumMsg(1))), verbose=False,
    )
    port = reactor_thread.call(server.listen, 0, interface="127.0.0.1")
    client_side = Recorder()
    client = LTTwistedClient(demo_protocol(), client_side.recv, verbose=False)
    reactor_thread.call(client.connect, "127.0.0.1", port)
    events = client_side.wait_count("msg", 2)
    assert [e[2] for e in events] == [None, ("num", 1)]
    reactor_thread.call(client.stop)
    reactor_thread.call(server.stop)

