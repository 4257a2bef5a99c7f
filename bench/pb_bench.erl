%% `make bench`: issue 4's and issue 14's scenarios for pybridge and its baselines, and
%% issue 16's pool scenarios (pb_bench_pool), side by side in one run. Every figure is the
%% median of ROUNDS rounds with min and max; a scenario's variants take turns within each
%% round. Writes JSON. The measuring itself (windows, CPU time per operation) is in
%% pb_bench_measure.
-module(pb_bench).
-export([main/0]).

-define(ROUNDS, 3).
-define(TUPLE, {ok, 42, <<"hello">>}).

-import(pb_bench_measure, [measure/3, until/2, with_cpu/2, per_s/1, ops/1, us/1, node_os_pid/0,
                           cpu_us/1, now_us/0]).

-spec main() -> ok.
main() ->
    [Out, Python, Floor, SpawnEcho] = [os:getenv(V) || V <- ["PB_BENCH_OUT", "PYBRIDGE_PYTHON",
                                                             "PB_BENCH_FLOOR", "PB_BENCH_SPAWN"]],
    %% the app's restarts (S1's spin_0, S8) would otherwise print an INFO report each
    logger:set_primary_config(level, warning),
    ok = erl_ddll:load_driver(filename:absname("_build/bench"), "pb_bench_echo"),
    ok = pb_bench_inproc:load(filename:absname("_build/bench/pb_bench_inproc"), Python,
                              filename:absname("bench")),
    Load0 = load_average(),
    start(1),
    Spawn = fun(Mode) -> open_port({spawn_executable, Python},
                                   [{args, [SpawnEcho, Mode]}, {packet, 4}, binary]) end,
    Ceiling = fun() -> open_port({spawn_driver, "pb_bench_echo"}, [binary]) end,
    Pyb = fun() -> pybridge:open("bench_drivers:Echo", [binary]) end,
    PybLocked = fun() -> pybridge:open("bench_drivers:EchoPortLocked", [binary]) end,
    PybZeroCopy = fun() -> pybridge:open("bench_drivers:EchoZeroCopy", [binary]) end,
    Results = only([
      s("S1", "port_control round trip, 8 B, p50 us", lower,
        [{pybridge, fun() -> control_p50(Pyb()) end},
         {pybridge_port_locked, fun() -> control_p50(PybLocked()) end},
         {pybridge_spin_0, fun() -> without_spin(fun() -> control_p50(Pyb()) end) end},
         {in_process, fun() -> nif_p50(fun pb_bench_inproc:control/1) end},
         {in_process_normal, fun() -> nif_p50(fun pb_bench_inproc:control_normal/1) end},
         {floor, fun() -> floor_p50([Floor, " pipe ", Python, " 20000"]) end},
         {spin_floor, fun() -> floor_p50([Floor, " spin 20000"]) end},
         {ceiling, fun() -> control_p50(Ceiling()) end}]),
      s("S2", "port_command echo, 8 B, one outstanding, msg/s", higher,
        [{pybridge, fun() -> echo_rate(Pyb(), 1, 20000) end},
         {spawn_port, fun() -> echo_rate(Spawn("raw"), 1, 20000) end},
         {ceiling, fun() -> echo_rate(Ceiling(), 1, 20000) end}]),
      s("S3", "port_command echo, 8 B, 1000 outstanding, msg/s", higher,
        [{pybridge, fun() -> echo_rate(Pyb(), 1000, 300000) end},
         {pybridge_port_locked, fun() -> echo_rate(PybLocked(), 1000, 300000) end},
         {spawn_port, fun() -> echo_rate(Spawn("raw"), 1000, 300000) end},
         {ceiling, fun() -> echo_rate(Ceiling(), 1000, 300000) end}]),
      s("S4", "port_call round trip of {ok, 42, <<\"hello\">>}, calls/s", higher,
        [{pybridge, fun() -> call_rate(Pyb()) end},
         {in_process, fun() -> nif_call_rate(fun pb_bench_inproc:call/1) end},
         {in_process_normal, fun() -> nif_call_rate(fun pb_bench_inproc:call_normal/1) end},
         {spawn_port, fun() -> term_echo_rate(Spawn("term")) end},
         {ceiling, fun() -> call_rate(Ceiling()) end}]),
      s("S5", "Python -> Erlang terms (output_term of a 5-tuple), terms/s", higher,
        [{pybridge, fun() -> term_rate() end},
         {in_process, fun() -> nif_term_rate() end}]),
      s("S6", "1 MiB binary echoed (outputv in, output back), GB/s", higher,
        [{pybridge, fun() -> mib_rate(Pyb()) end},
         {pybridge_zero_copy, fun() -> mib_rate(PybZeroCopy()) end},
         {spawn_port, fun() -> mib_rate(Spawn("raw")) end},
         {ceiling, fun() -> mib_rate(Ceiling()) end}]),
      s("S7", "10,000 ports open at once", higher, [{pybridge, fun s7/0}]),
      s("S8", "CPU-bound handler, 2 ports, 40 x 10 ms: pool of 2 speed-up over pool of 1", higher,
        [{pybridge, fun() -> pool_speedup() end}]),
      s("S9", "max lateness of a 10 ms Erlang timer while 10 ports' handlers take 100 ms, ms", lower,
        [{pybridge, fun() -> timer_lateness() end}]),
      s("S10", "8 MiB NumPy float64 array sent with output(arr), GB/s", higher,
        [{pybridge, fun() -> array_rate() end}]),
      s("S11", "100 ports (port-level locking), each control sleeping 10 ms: aggregate over one port",
        higher, [{pybridge, fun() -> sleepers(control) end},
                 {pybridge_raw_control, fun() -> sleepers(raw_control) end},
                 {pybridge_command, fun() -> sleepers(command) end}]),
      s("idle", "a worker with 10 open ports and no traffic, % of a CPU over 5 s", lower,
        [{pybridge, fun() -> idle() end}]),
      s("P1", "pool_call round trip of {ok, 42, <<\"hello\">>}, p50 us", lower,
        [{Where, fun() -> pb_bench_pool:call_p50(Where) end} || Where <- [direct, local, remote]]),
      s("P2", "pool_call, 16 callers, 4 members, calls/s", higher,
        [{Where, fun() -> pb_bench_pool:call_rate(Where) end} || Where <- [local, remote]]),
      s("P3", "pool_call to I/O-bound members (10 ms a call), 4 a node, 24 callers, calls/s", higher,
        [{list_to_atom(integer_to_list(N) ++ "_nodes"), fun() -> pb_bench_pool:scale_out(N) end}
         || N <- [1, 3]])
    ]),
    ok = file:write_file(Out, json(#{rounds => ?ROUNDS, scenarios => Results, machine => machine(),
                                     load_average => [Load0, load_average()],
                                     otp => list_to_binary(erlang:system_info(otp_release)),
                                     schedulers => erlang:system_info(schedulers)})),
    io:format("wrote ~s~n", [Out]).

%% What lscpu says of the CPUs this run had.
machine() ->
    Want = ["Model name", "CPU(s)", "Core(s) per socket", "Socket(s)", "Thread(s) per core",
            "Hypervisor vendor"],
    maps:from_list([{list_to_binary(K), list_to_binary(string:trim(V))}
                    || L <- string:split(os:cmd("LC_ALL=C lscpu"), "\n", all),
                       [K, V] <- [string:split(L, ":")], lists:member(K, Want)]).

%% The 1-minute load average: how busy the CPUs were with other work around the run.
load_average() ->
    {ok, S} = file:read_file("/proc/loadavg"),
    binary_to_float(hd(string:lexemes(S, " "))).

%% PB_BENCH_ONLY="S1,S3" runs just those scenarios (the others are not measured at all).
only(Results) -> [R || R <- Results, R =/= skipped].

want(Id) ->
    case os:getenv("PB_BENCH_ONLY") of
        false -> true;
        "" -> true;
        Ids -> lists:member(Id, string:lexemes(Ids, ", "))
    end.

start(Pool) ->
    application:stop(pybridge),
    application:load(pybridge),
    application:set_env(pybridge, python_path, [filename:absname("bench")]),
    application:set_env(pybridge, pool_size, Pool),
    {ok, _} = application:ensure_all_started(pybridge).

%% F() with the app restarted with spin_us 0 (neither side busy-polls), restarted after
%% with the default.
without_spin(F) ->
    application:set_env(pybridge, spin_us, 0),
    start(1),
    R = F(),
    application:unset_env(pybridge, spin_us),
    start(1),
    R.

%% The OS pid of the (only) worker: pool_size is 1 but in S8.
worker() ->
    [W] = pybridge_sup:managers(),
    pybridge_manager:os_pid(W).

%% One scenario: each variant measured ROUNDS times, rounds interleaved across variants.
%% A variant gives a number, a number with CPU times (with_cpu), or a map of named figures.
s(Id, What, Better, Variants) ->
    case want(Id) of
        true -> s_(Id, What, Better, Variants);
        false -> skipped
    end.

s_(Id, What, Better, Variants) ->
    io:format("~s ~s~n", [Id, What]),
    Runs = [[{Name, F()} || {Name, F} <- Variants] || _ <- lists:seq(1, ?ROUNDS)],
    Res = maps:from_list([{Name, summary([V || Run <- Runs, {N, V} <- Run, N =:= Name])}
                          || {Name, _} <- Variants]),
    [io:format("  ~-20s ~s~n", [N, show(V)]) || {N, V} <- lists:sort(maps:to_list(Res))],
    #{id => list_to_binary(Id), what => list_to_binary(What), better => Better, results => Res}.

summary([V | _] = Vs) when is_number(V) -> stats(Vs);
summary([#{value := _} = M | _] = Vs) ->
    maps:merge(stats([maps:get(value, V) || V <- Vs]),
               maps:from_list([{K, maps:get(median, stats([maps:get(K, V) || V <- Vs]))}
                               || K <- maps:keys(M), K =/= value]));
summary([M | _] = Vs) ->
    maps:from_list([{K, stats([maps:get(K, V) || V <- Vs])} || K <- maps:keys(M)]).

stats(Vs) ->
    S = lists:sort(Vs),
    #{median => lists:nth((length(S) + 1) div 2, S), min => hd(S), max => lists:last(S)}.

show(#{median := M} = V) ->
    io_lib:format("median ~.2f (min ~.2f, max ~.2f)~s~s", [M, maps:get(min, V), maps:get(max, V),
                  cpu_text(" node", node_cpu_us, V), cpu_text(" worker", worker_cpu_us, V)]);
show(Fields) -> [io_lib:format("~s ~.2f  ", [K, maps:get(median, F)]) || {K, F} <- maps:to_list(Fields)].

cpu_text(Who, K, V) ->
    case V of #{K := C} -> io_lib:format("~s ~.2f us/op", [Who, C]); _ -> "" end.

close(P) -> catch port_close(P), flush(P).

flush(P) -> receive {P, _} -> flush(P) after 0 -> ok end.

%% S1: p50 of one round trip, timed one by one.
control_p50(P) -> p50(worker_of(P), fun() -> erlang:port_control(P, 0, <<"12345678">>) end, P).

nif_p50(Nif) -> p50(none, fun() -> Nif(<<"12345678">>) end, none).

p50(Worker, Op, P) ->
    [Op() || _ <- lists:seq(1, 2000)],
    {Ts, Win} = measure(Worker, 20000, fun() ->
        T0 = erlang:monotonic_time(nanosecond), _ = Op(),
        {1, erlang:monotonic_time(nanosecond) - T0} end),
    P =:= none orelse close(P),
    S = list_to_tuple(lists:sort(Ts)),
    (with_cpu(element(size(S) div 2, S) / 1000, Win))#{p99 => element(size(S) * 99 div 100, S) / 1000}.

%% The worker behind a port: pybridge's worker, a spawn port's program, none for a driver
%% or NIF inside the VM.
worker_of(P) ->
    case erlang:port_info(P, os_pid) of
        {os_pid, Os} when is_integer(Os) -> Os;
        _ -> case erlang:port_info(P, name) of
                 {name, "pb_bench_echo"} -> none;
                 _ -> worker()
             end
    end.

floor_p50(Cmd) ->
    Out = os:cmd(lists:flatten(Cmd)),
    Get = fun(K) ->
        {match, [V]} = re:run(Out, "\"" ++ K ++ "\": ([0-9.]+)", [{capture, all_but_first, list}]),
        list_to_float(V) end,
    #{value => Get("p50"), p99 => Get("p99"), node_cpu_us => Get("node_cpu_us"),
      worker_cpu_us => Get("worker_cpu_us")}.

%% S2, S3: keep Window messages in flight until at least N have come back (and the
%% measuring window is long enough).
echo_rate(P, Window, N) ->
    D = <<"12345678">>,
    {[], Win} = until(worker_of(P), fun(Deadline) ->
        [true = erlang:port_command(P, D) || _ <- lists:seq(1, Window)],
        {pump(P, D, Window, 0, N, Deadline), []} end),
    close(P),
    per_s(Win).

pump(_P, _D, 0, Got, _N, _Deadline) -> Got;
pump(P, D, InFlight, Got, N, Deadline) ->
    receive {P, {data, _}} -> ok end,
    case Got + 1 < N orelse now_us() < Deadline of
        true -> true = erlang:port_command(P, D), pump(P, D, InFlight, Got + 1, N, Deadline);
        false -> pump(P, D, InFlight - 1, Got + 1, N, Deadline)
    end.

%% S4: port_call round trips, one at a time.
call_rate(P) ->
    [erlang:port_call(P, 0, ?TUPLE) || _ <- lists:seq(1, 1000)],
    Res = measure_rate(worker_of(P), 20000, fun() -> ?TUPLE = erlang:port_call(P, 0, ?TUPLE) end),
    close(P),
    Res.

nif_call_rate(Nif) ->
    [Nif(?TUPLE) || _ <- lists:seq(1, 1000)],
    measure_rate(none, 20000, fun() -> ?TUPLE = Nif(?TUPLE) end).

term_echo_rate(P) ->
    Go = fun() -> true = erlang:port_command(P, term_to_binary(?TUPLE)),
                  ?TUPLE = receive {P, {data, B}} -> binary_to_term(B) end end,
    [Go() || _ <- lists:seq(1, 1000)],
    Res = measure_rate(worker_of(P), 20000, Go),
    close(P),
    Res.

measure_rate(Worker, N, Op) ->
    {[], Win} = measure(Worker, N, fun() -> Op(), {1, none} end),
    per_s(Win).

%% S5: each batch, one control (or NIF call) makes Python send BATCH 5-tuples.
-define(BATCH, 100000).
term_rate() ->
    P = pybridge:open("bench_drivers:Terms", [binary]),
    Res = batches(worker(), fun() -> [] = erlang:port_control(P, ?BATCH, <<>>), ?BATCH end,
                  fun() -> receive {ok, 42, <<"hello">>, 3.5, done} -> ok end end),
    close(P),
    Res.

nif_term_rate() ->
    batches(none, fun() -> ok = pb_bench_inproc:terms(?BATCH), ?BATCH end,
            fun() -> receive {ok, 42, <<"hello">>, 3.5, done} -> ok end end).

%% Start() asks for a batch and says how many items it brings, Take() takes one.
batches(Worker, Start, Take) ->
    {[], Win} = measure(Worker, 2 * ?BATCH, fun() ->
        K = Start(), [Take() || _ <- lists:seq(1, K)], {K, none} end),
    per_s(Win).

%% S6: 1 MiB echoed, one at a time. GB/s; CPU per MiB.
mib_rate(P) ->
    D = binary:copy(<<"0123456789abcdef">>, 65536),
    {[], Win} = measure(worker_of(P), 200, fun() ->
        true = erlang:port_command(P, D), collect(P, byte_size(D)), {1, none} end),
    close(P),
    gb_per_s(byte_size(D), Win).

gb_per_s(Size, Win) -> with_cpu(ops(Win) * Size / us(Win) / 1.0e3, Win).

collect(_P, 0) -> ok;
collect(P, Left) -> receive {P, {data, B}} -> collect(P, Left - iolist_size(B)) end.

%% S10: control K sends the 8 MiB array K times. GB/s; CPU per array.
array_rate() ->
    P = pybridge:open("bench_drivers:Array", [binary]),
    Size = binary_to_integer(iolist_to_binary(erlang:port_control(P, 0, <<>>))),
    {[], Win} = measure(worker(), 20, fun() ->
        _ = erlang:port_control(P, 4, <<>>), collect(P, 4 * Size), {4, none} end),
    close(P),
    gb_per_s(Size, Win).

%% S7: 10,000 ports open at once.
s7() ->
    N = 10000,
    OsPid = worker(),
    garbage_collect(),
    Mem0 = erlang:memory(total), Rss0 = rss_kib(OsPid),
    T0 = now_us(),
    Ps = [pybridge:open("bench_drivers:Echo", [binary]) || _ <- lists:seq(1, N)],
    T1 = now_us(),
    Mem1 = erlang:memory(total), Rss1 = rss_kib(OsPid),
    [true = erlang:port_command(P, <<"x">>) || P <- Ps],
    [receive {P, {data, _}} -> ok end || P <- Ps],
    T2 = now_us(),
    [close(P) || P <- Ps],
    #{opens_per_s => N / ((T1 - T0) / 1.0e6),
      kib_per_port => ((Mem1 - Mem0) / 1024 + (Rss1 - Rss0)) / N,
      round_trip_s => (T2 - T1) / 1.0e6}.

rss_kib(OsPid) ->
    {ok, S} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    {match, [K]} = re:run(S, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]),
    list_to_integer(K).

%% S8: the same CPU-bound work with one worker, then two.
pool_speedup() ->
    T1 = cpu_run(1),
    T2 = cpu_run(2),
    start(1),
    T1 / T2.

cpu_run(Pool) ->
    start(Pool),
    Ps = [pybridge:open("bench_drivers:Cpu", [binary]) || _ <- [1, 2]],
    T0 = now_us(),
    [true = erlang:port_command(P, <<"10">>) || _ <- lists:seq(1, 20), P <- Ps],
    [receive {P, {data, _}} -> ok end || _ <- lists:seq(1, 20), P <- Ps],
    T = now_us() - T0,
    [close(P) || P <- Ps],
    T.

%% S9: a 10 ms timer's worst lateness while ten ports' handlers sleep 100 ms each.
timer_lateness() ->
    Ps = [pybridge:open("bench_drivers:Slow", [binary]) || _ <- lists:seq(1, 10)],
    Self = self(),
    Sampler = spawn_link(fun() -> Self ! {lateness, sample(100, 0)} end),
    [true = erlang:port_command(P, <<"x">>) || _ <- lists:seq(1, 5), P <- Ps],
    Late = receive {lateness, L} -> L end,
    unlink(Sampler),
    [close(P) || P <- Ps],
    Late.

sample(0, Max) -> Max / 1000;
sample(K, Max) ->
    T0 = now_us(),
    receive after 10 -> ok end,
    sample(K - 1, max(Max, now_us() - T0 - 10000)).

%% S11: round trips per second of one port alone, then of 100 ports at once, each driven by
%% a process of its own, for at least 1 s each: with pybridge:control (as the target says),
%% whose wait past the spin leaves the scheduler free; with a raw erlang:port_control, which
%% holds it as a C driver's does; and with port_command and the answer's message.
sleepers(How) ->
    One = sleepers_rate(How, 1),
    All = sleepers_rate(How, 100),
    #{one_port_per_s => One, aggregate_per_s => All, speedup => All / One}.

sleepers_rate(How, N) ->
    Self = self(),
    %% each process opens its port, so that the port's messages come to it
    Pids = [spawn_link(fun() ->
                P = pybridge:open("bench_drivers:SleepPortLocked", [binary]),
                Self ! {ready, self()},
                Deadline = receive {go, D} -> D end,
                Self ! {self(), sleeper(How, P, Deadline, 0)},
                close(P) end) || _ <- lists:seq(1, N)],
    [receive {ready, Pid} -> ok end || Pid <- Pids],
    T0 = now_us(),
    [Pid ! {go, T0 + 1000000} || Pid <- Pids],
    Done = lists:sum([receive {Pid, K} -> K end || Pid <- Pids]),
    Done / ((now_us() - T0) / 1.0e6).

sleeper(How, P, Deadline, K) ->
    case now_us() < Deadline of
        true when How =:= control ->
            "x" = pybridge:control(P, 0, <<"x">>),
            sleeper(How, P, Deadline, K + 1);
        true when How =:= raw_control ->
            "x" = erlang:port_control(P, 0, <<"x">>),
            sleeper(How, P, Deadline, K + 1);
        true ->
            true = erlang:port_command(P, <<"x">>),
            receive {P, {data, <<"x">>}} -> ok end,
            sleeper(How, P, Deadline, K + 1);
        false -> K
    end.

%% idle: CPU use of the worker and of the node over 5 s while 10 ports are open and quiet.
idle() ->
    Ps = [pybridge:open("bench_drivers:Echo", [binary]) || _ <- lists:seq(1, 10)],
    [<<"x">> = erlang:port_control(P, 0, <<"x">>) || P <- Ps],
    receive after 1000 -> ok end,
    Os = worker(), Node = node_os_pid(),
    W0 = cpu_us(Os), N0 = cpu_us(Node), T0 = now_us(),
    receive after 5000 -> ok end,
    W1 = cpu_us(Os), N1 = cpu_us(Node), T = now_us() - T0,
    [close(P) || P <- Ps],
    #{worker_pct => 100 * (W1 - W0) / T, node_pct => 100 * (N1 - N0) / T}.

%% A small JSON writer for maps, lists, numbers, atoms and binaries.
json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(K), ":", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(L) when is_list(L) -> ["[", lists:join(",", [json(X) || X <- L]), "]"];
json(A) when is_atom(A) -> json(atom_to_binary(A));
json(B) when is_binary(B) -> [$", string:replace(string:replace(B, "\\", "\\\\", all), "\"", "\\\"", all), $"];
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 3}, compact]).
