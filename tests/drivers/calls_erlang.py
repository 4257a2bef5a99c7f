"""Port.call_erlang from every kind of callback and thread: the outcome of a call as a term
the test can compare (pybridge_erl_call_tests, tests/python/test_call_erlang.py).

call(1, {M, F, A}) or call(1, {M, F, A, Seconds}) sets the call to make; output then makes
it and sends ``{How, Outcome}`` with output_term, How being what the output said: "out"
(from output), "thread" (a thread the driver starts), "job" (an async_ job), "timer" (the
timeout callback), "many N" (N calls in a row from output; the last one's outcome), "err"
(the ErlangError's type name, class, reason and stacktrace). "nap Ms" keeps the loop
thread (which reads the answers to other threads' calls) busy for Ms.
call(2, Request) makes the call inside the blocking call callback, and returns its outcome;
call(3, {M, F, N}) the same with the argument N bytes made in Python; call(4, {N, Request})
makes it N times and returns the last outcome; call(5, Request) makes it from a thread the
callback waits for; call(7, Ms) sleeps Ms in Python and returns ok. control(2, _) makes the
call set by call(1, _) inside the blocking control, sends {control, Outcome} and returns
"done". Opened with "M F", start calls M:F() and sends {start, Outcome}.
"""
import threading
import time

import pybridge
from pybridge import Atom, ErlangError, Timeout


def outcome(port, request):
    """{ok, Result} | {erlang_error, Class, Reason, StackIsAList} | timeout"""
    m, f, a, *rest = request
    try:
        return (Atom("ok"), port.call_erlang(m, f, a, *rest))
    except ErlangError as e:
        return (Atom("erlang_error"), Atom(e.cls), e.reason, isinstance(e.stacktrace, list))
    except Timeout:
        return Atom("timeout")


class CallsErlang(pybridge.Driver):
    def start(self, command):
        if command:                     # "M F": M:F() from start, sent as {start, Outcome}
            m, f = command.split()
            self.port.output_term((Atom("start"), outcome(self.port, (m, f, []))))

    def call(self, command, term):
        if command == 1:
            self.request = term
            return Atom("ok")
        if command == 2:
            return outcome(self.port, term)
        if command == 3:                # {M, F, N}: M:F(<<N bytes>>), the bytes made here
            m, f, n = term
            return outcome(self.port, (m, f, [b"x" * n]))
        if command == 4:
            n, request = term
            for _ in range(n - 1):
                outcome(self.port, request)
            return outcome(self.port, request)
        if command == 7:
            time.sleep(term / 1000)
            return Atom("ok")
        if command == 5:
            got = []
            t = threading.Thread(target=lambda: got.append(outcome(self.port, term)))
            t.start()
            t.join()
            return got[0]
        raise pybridge.BadArg

    def control(self, command, data):
        if command == 2:
            self.port.output_term((Atom("control"), outcome(self.port, self.request)))
            return b"done"
        raise pybridge.BadArg

    def output(self, data):
        how, _, n = data.decode().partition(" ")
        if how == "out":
            self.port.output_term((Atom("out"), outcome(self.port, self.request)))
        elif how == "err":
            try:
                self.port.call_erlang(*self.request)
            except ErlangError as e:
                self.port.output_term((Atom("err"), type(e).__name__.encode(), e.cls, e.reason,
                                       e.stacktrace, isinstance(e, pybridge.PybridgeError)))
        elif how == "many":
            for _ in range(int(n) - 1):
                self.port.call_erlang(*self.request)
            self.port.output_term((Atom("many"), outcome(self.port, self.request)))
        elif how == "thread":
            threading.Thread(target=lambda: self.port.output_term(
                (Atom("thread"), outcome(self.port, self.request)))).start()
        elif how == "nap":              # the loop thread busy: answers to threads wait
            time.sleep(int(n) / 1000)
        elif how == "job":
            self.port.async_(outcome, self.port, self.request)
        elif how == "timer":
            self.port.set_timer(0)

    def ready_async(self, result):
        self.port.output_term((Atom("job"), result))

    def timeout(self):
        self.port.output_term((Atom("timer"), outcome(self.port, self.request)))


class AsyncCallsErlang(CallsErlang):
    """The awaitable form, from a coroutine: output "coro"; call(6, Request) awaits it in
    the blocking call."""

    async def call(self, command, term):
        if command != 6:
            return CallsErlang.call(self, command, term)
        m, f, a, *rest = term
        try:
            return (Atom("ok"), await self.port.call_erlang_async(m, f, a, *rest))
        except Timeout:
            return Atom("timeout")

    async def output(self, data):
        m, f, a, *rest = self.request
        try:
            got = (Atom("ok"), await self.port.call_erlang_async(m, f, a, *rest))
        except ErlangError as e:
            got = (Atom("erlang_error"), Atom(e.cls), e.reason, isinstance(e.stacktrace, list))
        except Timeout:
            got = Atom("timeout")
        self.port.output_term((Atom("coro"), got))
