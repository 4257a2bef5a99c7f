"""A port's channel to its worker: two pipes while descriptors are plenty, one socketpair
past half of RLIMIT_NOFILE (docs/PROTOCOL.md, Ports). Both kinds carry every path the
same, side by side on one node."""
import resource
import subprocess

from conftest import EBIN, ROOT, node_env

NODE = r"""
application:load(pybridge),
application:set_env(pybridge, python_path, ["tests/drivers"]),
{ok, _} = application:ensure_all_started(pybridge),
Kinds = fun() ->
    {ok, Fds} = file:list_dir("/proc/self/fd"),
    Links = [L || F <- Fds, {ok, L} <- [file:read_link("/proc/self/fd/" ++ F)]],
    {length([L || "pipe:" ++ _ = L <- Links]), length([L || "socket:" ++ _ = L <- Links])}
end,
{Pipes0, Sockets0} = Kinds(),
Ports = [pybridge:open("upper:Upper", [binary]) || _ <- lists:seq(1, 70)],
{Pipes1, Sockets1} = Kinds(),
{Pipes, Sockets} = {Pipes1 - Pipes0, Sockets1 - Sockets0},
Ok = lists:all(fun({I, P}) ->
    D = integer_to_binary(I),
    %% 60 KB goes on the channel itself, 200 KB through shared memory: both on both kinds
    Half = case I rem 2 of 0 -> 30000; 1 -> 100000 end,
    true = erlang:port_command(P, [D, binary:copy(<<"ab">>, Half)]),
    Up = <<D/binary, (binary:copy(<<"AB">>, Half))/binary>>,
    Echo = (fun Collect(Acc) when byte_size(Acc) < byte_size(Up) ->
                    receive {P, {data, B}} -> Collect(<<Acc/binary, B/binary>>)
                    after 5000 -> Acc end;
                Collect(Acc) -> Acc end)(<<>>),
    Echo =:= Up
        andalso erlang:port_control(P, 0, D) =:= lists:reverse(binary_to_list(D))
        andalso erlang:port_call(P, 0, x) =:= {count, 1}
end, lists:zip(lists:seq(1, 70), Ports)),
[port_close(P) || P <- Ports],
io:format("~p.~n", [{Ok, Pipes, Sockets}]),
halt().
"""


def low_fd_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_pipes_then_sockets_past_half_the_descriptor_limit():
    out = subprocess.run(["erl", "-noshell", "-pa", str(EBIN), "-eval", NODE], cwd=ROOT,
                         env=node_env(), capture_output=True, text=True, timeout=120,
                         preexec_fn=low_fd_limit).stdout
    ok, pipes, sockets = out.strip().splitlines()[-1].strip("{}.").split(",")
    assert ok == "true", out
    # fds under 128: pipes, two per port; beyond: one socket per port
    assert int(pipes) >= 80 and int(pipes) % 2 == 0, out
    assert int(sockets) >= 5 and int(pipes) // 2 + int(sockets) == 70, out
