"""The Python side of the in-process baseline of `make bench` (bench/inproc_nif.c, loaded
into the VM): the work of bench_drivers.Echo and Terms as plain functions. The NIF makes
atoms str and binaries bytes, so TUPLE is {ok, 42, <<"hello">>, 3.5, done} in Erlang."""

TUPLE = ("ok", 42, b"hello", 3.5, "done")


def control(data):
    return data


def call(term):
    return term


def terms(n, send):
    for _ in range(n):
        send(TUPLE)
