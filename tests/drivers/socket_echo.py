"""Serves a TCP socket from the worker's event loop with select, no thread: accepts on
127.0.0.1, echoes what arrives, and tells Erlang about each step."""
import socket

import pybridge
from pybridge import SELECT_READ, SELECT_USE, Atom


class SocketEcho(pybridge.Driver):
    def start(self, command):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.setblocking(False)
        self.port.select(self.listener, SELECT_READ, True)

    def call(self, command, term):
        return self.listener.getsockname()[1]

    def ready_input(self, sock):
        if sock is self.listener:
            conn, _ = sock.accept()
            conn.setblocking(False)
            self.port.select(conn, SELECT_READ, True)
            self.port.output_term(Atom("accepted"))
            return
        data = sock.recv(65536)
        if data:
            sock.sendall(data)
            self.port.output_term((Atom("echoed"), data))
        else:
            self.port.select(sock, SELECT_READ | SELECT_USE, False)

    def stop_select(self, sock):
        sock.close()
        if sock is not self.listener:
            self.port.output_term(Atom("closed"))
