%% `make soak`: 1,000,000 commands over 100 ports, then 10,000 open/close cycles, with the
%% RSS and open descriptors of the VM and of the worker sampled every tenth of the run.
%% Fails when the last tenth is above the first by more than a small margin.
-module(pb_soak).
-export([main/0]).

main() ->
    application:load(pybridge),
    application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
    {ok, _} = application:ensure_all_started(pybridge),
    [W | _] = pybridge_sup:managers(),
    Worker = integer_to_list(pybridge_manager:os_pid(W)),
    Vm = os:getpid(),
    Ports = [pybridge:open("upper:Upper", [binary]) || _ <- lists:seq(1, 100)],
    Commands = [begin commands(Ports, 1000), sample(Vm, Worker) end || _ <- lists:seq(1, 10)],
    [port_close(P) || P <- Ports],
    Cycles = [begin cycles(1000), sample(Vm, Worker) end || _ <- lists:seq(1, 10)],
    Ok = report("1,000,000 commands over 100 ports", Commands)
         and report("10,000 open/close cycles", Cycles),
    halt(case Ok of true -> 0; false -> 1 end).

%% Each port gets N commands, at most 100 in flight per port.
commands(Ports, N) ->
    [begin
         [true = erlang:port_command(P, <<"soak">>) || P <- Ports],
         [receive {P, {data, <<"SOAK">>}} -> ok end || P <- Ports]
     end || _ <- lists:seq(1, N)],
    ok.

cycles(N) ->
    [begin
         P = pybridge:open("upper:Upper", [binary]),
         true = erlang:port_command(P, <<"x">>),
         receive {P, {data, _}} -> ok end,
         port_close(P)
     end || _ <- lists:seq(1, N)],
    ok.

sample(Vm, Worker) ->
    [erlang:garbage_collect(P) || P <- processes()],
    {rss(Vm), fds(Vm), rss(Worker), fds(Worker)}.

rss(OsPid) ->
    {ok, S} = file:read_file("/proc/" ++ OsPid ++ "/status"),
    {match, [K]} = re:run(S, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]),
    list_to_integer(K).

fds(OsPid) ->
    {ok, L} = file:list_dir("/proc/" ++ OsPid ++ "/fd"),
    length(L).

%% Margins: RSS may grow by 10 % + 8 MiB (allocator warm-up), descriptors by 5.
report(What, Samples) ->
    {VR0, VF0, WR0, WF0} = hd(Samples),
    {VR1, VF1, WR1, WF1} = lists:last(Samples),
    Ok = VR1 =< VR0 * 1.1 + 8192 andalso WR1 =< WR0 * 1.1 + 8192
         andalso VF1 =< VF0 + 5 andalso WF1 =< WF0 + 5,
    io:format("~s: VM rss ~w -> ~w KiB, fds ~w -> ~w; worker rss ~w -> ~w KiB, fds ~w -> ~w: ~s~n",
              [What, VR0, VR1, VF0, VF1, WR0, WR1, WF0, WF1, case Ok of true -> "flat"; false -> "GROWS" end]),
    Ok.
