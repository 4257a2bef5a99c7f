"""A TCP line server whose clients Erlang answers. The worker's event loop serves the
sockets through ``select`` (driver_select): no thread, no blocking call.

Open args: the TCP port to listen on, on 127.0.0.1 (none or 0: any free one).

- To the owner: ``{Port, {connected, Id}}``, ``{Port, {line, Id, Line}}`` (without its
  newline; a line longer than MAX_LINE arrives in pieces), ``{Port, {closed, Id}}``.
- ``port_command(Port, <<Id:32, Data/binary>>)`` writes Data to client Id. What the socket
  does not take at once waits here, and goes out as ``ready_output`` says the socket has
  room (selected for writing only while something waits).
- ``port_control`` CLOSE (1) ``<<Id:32>>``: closes client Id once what waits is written.
- ``port_call`` 0 (any term) -> ``#{port => TcpPort, clients => [Id]}``.

Erlang usage: examples/line_server_demo.erl.
"""
import socket
import struct

import pybridge
from pybridge import SELECT_READ, SELECT_USE, SELECT_WRITE, Atom

CLOSE = 1
MAX_LINE = 64 * 1024


class Client:
    __slots__ = ("id", "sock", "inbuf", "outbuf", "closing")

    def __init__(self, cid, sock):
        self.id, self.sock = cid, sock
        self.inbuf, self.outbuf = bytearray(), bytearray()
        self.closing = False


class LineServer(pybridge.Driver):
    def start(self, command):
        self.listener = socket.create_server(("127.0.0.1", int(command or 0)))
        self.listener.setblocking(False)
        self.port.select(self.listener, SELECT_READ, True)
        self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)
        self.clients = {}
        self.by_sock = {}
        self.next_id = 0

    def tell(self, *msg):
        self.port.output_term((self.port, (Atom(msg[0]), *msg[1:])))

    def ready_input(self, sock):
        if sock is self.listener:
            conn, _ = sock.accept()
            conn.setblocking(False)
            self.next_id += 1
            client = Client(self.next_id, conn)
            self.clients[client.id] = self.by_sock[conn] = client
            self.port.select(conn, SELECT_READ, True)
            self.tell("connected", client.id)
            return
        client = self.by_sock[sock]
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        client.inbuf += data
        while True:
            end = client.inbuf.find(b"\n")
            if end < 0 and len(client.inbuf) < MAX_LINE:
                break
            cut = end if 0 <= end < MAX_LINE else MAX_LINE
            line = bytes(client.inbuf[:cut]).rstrip(b"\r")
            del client.inbuf[:cut + (cut == end)]
            self.tell("line", client.id, line)

    def ready_output(self, sock):
        self.write(self.by_sock[sock])

    def output(self, data):
        if len(data) < 4:
            raise pybridge.BadArg("port_command takes <<Id:32, Data/binary>>")
        client = self.clients.get(struct.unpack_from(">I", data)[0])
        if client is not None and not client.closing:
            client.outbuf += data[4:]
            self.write(client)

    def control(self, command, data):
        if command != CLOSE or len(data) != 4:
            raise pybridge.BadArg("control CLOSE (1) takes <<Id:32>>")
        client = self.clients.get(struct.unpack(">I", data)[0])
        if client is None:
            return b"\x00"
        client.closing = True
        self.write(client)
        return b"\x01"

    def call(self, command, term):
        return {Atom("port"): self.listener.getsockname()[1],
                Atom("clients"): sorted(self.clients)}

    def write(self, client):
        try:
            sent = client.sock.send(client.outbuf) if client.outbuf else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self.drop(client)
            return
        del client.outbuf[:sent]
        if client.outbuf:
            self.port.select(client.sock, SELECT_WRITE, True)
        else:
            self.port.select(client.sock, SELECT_WRITE, False)
            if client.closing:
                self.drop(client)

    def drop(self, client):
        """Stop selecting the socket: stop_select closes it once the loop lets go of it."""
        if self.clients.pop(client.id, None) is not None:
            self.port.select(client.sock, SELECT_READ | SELECT_WRITE | SELECT_USE, False)

    def stop_select(self, sock):
        sock.close()
        client = self.by_sock.pop(sock, None)
        if client is not None:
            self.tell("closed", client.id)
