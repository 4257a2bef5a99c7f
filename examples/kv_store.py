"""A key-value store on SQLite behind a port. Keys and values are binaries.

Open args: the database file (created if missing); none means a temporary one, removed
when the port closes.

``port_control`` (bytes in, binaries out), as a C driver would take them:

- GET (1) ``Key`` -> ``Value``; a missing key raises KeyError
  (``{python, 'builtins.KeyError', ...}`` from ``pybridge:control/3``, badarg from the BIF)
- PUT (2) ``<<KeyLen:32, Key/binary, Value/binary>>`` -> ``<<>>``
- DELETE (3) ``Key`` -> ``<<1>>`` if it was there, else ``<<0>>``

``port_call`` (command 0, terms):

- ``{get, Key}`` -> ``Value | undefined``;  ``{put, Key, Value}`` -> ``ok``
- ``{range, From, To}`` -> ``[{Key, Value}]`` with From =< Key < To, in key order
- ``count`` -> the number of keys
- ``{load, [{Key, Value}]}`` -> ``Ref`` at once. The pairs are written by an ``async_`` job
  on the worker's thread pool, committed every BATCH rows, while the port keeps answering;
  then the owner gets ``{Port, {loaded, Ref, N}}``, or ``{Port, {load_failed, Ref, N, Why}}``
  with the N pairs of the batches committed before the error.
  Loads of one port run one after the other, in order (``async_`` key).

Erlang usage: examples/kv_store_demo.erl.
"""
import os
import sqlite3
import struct
import tempfile

import pybridge
from pybridge import Atom

GET, PUT, DELETE = 1, 2, 3
BATCH = 5000
SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"


def load(ref, path, pairs):
    """The async job: its own connection, since the port's is used by the worker's loop
    meanwhile. WAL lets readers go on during the load; a PUT waits one BATCH at most."""
    db, written = sqlite3.connect(path), 0
    try:
        for i in range(0, len(pairs), BATCH):
            with db:
                db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", pairs[i:i + BATCH])
            written += len(pairs[i:i + BATCH])
        return ref, written, None
    except sqlite3.Error as e:
        return ref, written, str(e)
    finally:
        db.close()


def binary(term):
    if isinstance(term, str):
        return term.encode()
    if not isinstance(term, bytes):
        raise pybridge.BadArg(f"keys and values are binaries, not {type(term).__name__}")
    return term


class KvStore(pybridge.Driver):
    def start(self, command):
        self.tmp = None if command else tempfile.TemporaryDirectory(prefix="kv_store-")
        self.path = command or os.path.join(self.tmp.name, "kv.sqlite3")
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)
        self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)
        self.loads = 0

    def stop(self):
        self.db.close()
        if self.tmp is not None:
            self.tmp.cleanup()

    def get(self, key):
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return row and row[0]

    def put(self, key, value):
        self.db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))

    def control(self, command, data):
        if command == GET:
            value = self.get(data)
            if value is None:
                raise KeyError(data)
            return value
        if command == PUT:
            if len(data) < 4 or len(data) < 4 + struct.unpack_from(">I", data)[0]:
                raise pybridge.BadArg("PUT takes <<KeyLen:32, Key, Value>>")
            n = struct.unpack_from(">I", data)[0]
            self.put(data[4:4 + n], data[4 + n:])
            return b""
        if command == DELETE:
            gone = self.db.execute("DELETE FROM kv WHERE k = ?", (data,)).rowcount
            return b"\x01" if gone else b"\x00"
        raise pybridge.BadArg(f"unknown control command {command}")

    def call(self, command, term):
        if command != 0:
            raise pybridge.BadArg(f"unknown call command {command}")
        if term == Atom("count"):
            return self.db.execute("SELECT count(*) FROM kv").fetchone()[0]
        tag, *args = term if isinstance(term, tuple) and term else (None,)
        if tag == Atom("get") and len(args) == 1:
            return self.get(binary(args[0]))
        if tag == Atom("put") and len(args) == 2:
            self.put(binary(args[0]), binary(args[1]))
            return Atom("ok")
        if tag == Atom("range") and len(args) == 2:
            return self.db.execute("SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k",
                                   (binary(args[0]), binary(args[1]))).fetchall()
        if tag == Atom("load") and len(args) == 1 and isinstance(args[0], list):
            pairs = [(binary(k), binary(v)) for k, v in args[0]]
            self.loads += 1
            self.port.async_(load, self.loads, self.path, pairs, key=self.path)
            return self.loads
        raise pybridge.BadArg(f"unknown request {term!r}")

    def ready_async(self, result):
        ref, n, error = result
        if error is None:
            self.port.output_term((self.port, (Atom("loaded"), ref, n)))
        else:
            self.port.output_term((self.port, (Atom("load_failed"), ref, n, error.encode())))
