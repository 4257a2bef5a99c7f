"""Functions as ErlPort code has them, for pybridge_python (pybridge_python_tests): plain
functions, an object's method reached by a dotted name, a call back into Erlang, a message
handler fed by cast, and one that sleeps."""
import time

from pybridge.erlport import Atom, call, cast, set_default_message_handler, set_message_handler


def add(a, b):
    return a + b


def fail(message):
    raise ValueError(message.decode())


class Greeter:
    @staticmethod
    def greet(name):
        return b"hello " + name


greeter = Greeter()


def node_name():
    return call(Atom("erlang"), Atom("node"), [])


def echo_casts_to(pid):
    set_message_handler(lambda message: cast(pid, (Atom("cast"), message)))
    return Atom("ok")


def fragile_handler(pid):
    """A handler that raises on boom: logged, and the instance goes on."""
    def handle(message):
        if message == Atom("boom"):
            raise RuntimeError("the handler broke")
        cast(pid, (Atom("cast"), message))
    set_message_handler(handle)
    return Atom("ok")


def drop_casts():
    set_default_message_handler()
    return Atom("ok")


def sleep(seconds):
    time.sleep(seconds)
    return Atom("slept")


def outside_a_call():
    """pybridge.erlport's functions from a thread of their own: no instance runs there."""
    import threading
    got = []
    t = threading.Thread(target=lambda: got.append(_error_of(node_name)))
    t.start()
    t.join()
    return got[0]


def _error_of(fn):
    try:
        return fn()
    except RuntimeError as e:
        return (Atom("runtime_error"), str(e).encode())
