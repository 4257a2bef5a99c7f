%% `make bench`: issue 4's scenarios for pybridge and its baselines, side by side in
%% one run, and issue 16's pool scenarios (pb_bench_pool). Every figure is the median of ROUNDS rounds with min and max. Writes JSON.
-module(pb_bench).
-export([main/0]).

-define(ROUNDS, 3).
-define(TUPLE, {ok, 42, <<"hello">>}).

main() ->
    [Out, Python, Floor, SpawnEcho] = [os:getenv(V) || V <- ["PB_BENCH_OUT", "PYBRIDGE_PYTHON",
                                                             "PB_BENCH_FLOOR", "PB_BENCH_SPAWN"]],
    ok = erl_ddll:load_driver(filename:absname("_build/bench"), "pb_bench_echo"),
    start(1),
    Spawn = fun(Mode) -> open_port({spawn_executable, Python},
                                   [{args, [SpawnEcho, Mode]}, {packet, 4}, binary]) end,
    Ceiling = fun() -> open_port({spawn_driver, "pb_bench_echo"}, [binary]) end,
    Pyb = fun() -> pybridge:open("bench_drivers:Echo", [binary]) end,
    PybLocked = fun() -> pybridge:open("bench_drivers:EchoPortLocked", [binary]) end,
    Results = only([
      s("S1", "port_control round trip, 8 B, p50 us", lower,
        [{pybridge, fun() -> control_p50(Pyb()) end},
         {pybridge_port_locked, fun() -> control_p50(PybLocked()) end},
         {floor, fun() -> floor_p50(Floor, Python) end},
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
         {spawn_port, fun() -> term_echo_rate(Spawn("term")) end},
         {ceiling, fun() -> call_rate(Ceiling()) end}]),
      s("S5", "Python -> Erlang terms (output_term of a 5-tuple), terms/s", higher,
        [{pybridge, fun() -> term_rate() end}]),
      s("S6", "1 MiB binary echoed (outputv in, output back), GB/s", higher,
        [{pybridge, fun() -> mib_rate(Pyb()) end},
         {spawn_port, fun() -> mib_rate(Spawn("raw")) end},
         {ceiling, fun() -> mib_rate(Ceiling()) end}]),
      s7(),
      s("S8", "CPU-bound handler, 2 ports, 40 x 10 ms: pool of 2 speed-up over pool of 1", higher,
        [{pybridge, fun() -> pool_speedup() end}]),
      s("S9", "max lateness of a 10 ms Erlang timer while 10 ports' handlers take 100 ms, ms", lower,
        [{pybridge, fun() -> timer_lateness() end}]),
      s("S10", "pool_call round trip of {ok, 42, <<\"hello\">>}, p50 us", lower,
        [{Where, fun() -> pb_bench_pool:call_p50(Where) end} || Where <- [direct, local, remote]]),
      s("S11", "pool_call, 16 callers, 4 members, calls/s", higher,
        [{Where, fun() -> pb_bench_pool:call_rate(Where) end} || Where <- [local, remote]]),
      s("S12", "pool_call to I/O-bound members (10 ms a call), 4 a node, 24 callers, calls/s", higher,
        [{list_to_atom(integer_to_list(N) ++ "_nodes"), fun() -> pb_bench_pool:scale_out(N) end}
         || N <- [1, 3]])
    ]),
    ok = file:write_file(Out, json(#{rounds => ?ROUNDS, scenarios => Results,
                                     otp => list_to_binary(erlang:system_info(otp_release)),
                                     schedulers => erlang:system_info(schedulers)})),
    io:format("wrote ~s~n", [Out]).

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

%% One scenario: each variant measured ROUNDS times, rounds interleaved across variants.
s(Id, What, Better, Variants) ->
    case want(Id) of
        true -> s_(Id, What, Better, Variants);
        false -> skipped
    end.

s_(Id, What, Better, Variants) ->
    io:format("~s ~s~n", [Id, What]),
    Runs = [[{Name, F()} || {Name, F} <- Variants] || _ <- lists:seq(1, ?ROUNDS)],
    Stats = [{Name, stats([V || Run <- Runs, {N, V} <- Run, N =:= Name])} || {Name, _} <- Variants],
    [io:format("  ~-12s median ~.2f (min ~.2f, max ~.2f)~n", [N, M, Lo, Hi]) || {N, {M, Lo, Hi}} <- Stats],
    #{id => list_to_binary(Id), what => list_to_binary(What), better => Better,
      results => maps:from_list([{N, #{median => M, min => Lo, max => Hi}} || {N, {M, Lo, Hi}} <- Stats])}.

stats(Vs) ->
    S = lists:sort(Vs),
    {lists:nth((length(S) + 1) div 2, S), hd(S), lists:last(S)}.

close(P) -> catch port_close(P), flush(P).

flush(P) -> receive {P, _} -> flush(P) after 0 -> ok end.

now_us() -> erlang:monotonic_time(microsecond).

control_p50(P) ->
    D = <<"12345678">>,
    [erlang:port_control(P, 0, D) || _ <- lists:seq(1, 2000)],
    N = 20000,
    Ts = [begin T0 = erlang:monotonic_time(nanosecond), _ = erlang:port_control(P, 0, D),
                erlang:monotonic_time(nanosecond) - T0 end || _ <- lists:seq(1, N)],
    close(P),
    lists:nth(N div 2, lists:sort(Ts)) / 1000.

floor_p50(Floor, Python) ->
    Out = os:cmd(Floor ++ " " ++ Python ++ " 20000"),
    {match, [P50]} = re:run(Out, "\"p50\": ([0-9.]+)", [{capture, all_but_first, list}]),
    list_to_float(P50).

%% Keep Window messages in flight until N have come back.
echo_rate(P, Window, N) ->
    D = <<"12345678">>,
    T0 = now_us(),
    [true = erlang:port_command(P, D) || _ <- lists:seq(1, min(Window, N))],
    pump(P, D, N - min(Window, N), N),
    Rate = N / ((now_us() - T0) / 1.0e6),
    close(P),
    Rate.

pump(_P, _D, _ToSend, 0) -> ok;
pump(P, D, ToSend, Left) ->
    receive {P, {data, _}} -> ok end,
    ToSend > 0 andalso erlang:port_command(P, D),
    pump(P, D, max(ToSend - 1, 0), Left - 1).

call_rate(P) ->
    N = 20000,
    [erlang:port_call(P, 0, ?TUPLE) || _ <- lists:seq(1, 1000)],
    T0 = now_us(),
    [?TUPLE = erlang:port_call(P, 0, ?TUPLE) || _ <- lists:seq(1, N)],
    Rate = N / ((now_us() - T0) / 1.0e6),
    close(P),
    Rate.

term_echo_rate(P) ->
    N = 20000,
    Go = fun(K) -> [begin true = erlang:port_command(P, term_to_binary(?TUPLE)),
                          ?TUPLE = receive {P, {data, B}} -> binary_to_term(B) end end
                    || _ <- lists:seq(1, K)] end,
    Go(1000),
    T0 = now_us(),
    Go(N),
    Rate = N / ((now_us() - T0) / 1.0e6),
    close(P),
    Rate.

term_rate() ->
    P = pybridge:open("bench_drivers:Terms", [binary]),
    N = 200000,
    T0 = now_us(),
    [] = erlang:port_control(P, N, <<>>),
    [receive {ok, 42, <<"hello">>, 3.5, done} -> ok end || _ <- lists:seq(1, N)],
    Rate = N / ((now_us() - T0) / 1.0e6),
    close(P),
    Rate.

mib_rate(P) ->
    D = binary:copy(<<"0123456789abcdef">>, 65536),
    K = 500,
    T0 = now_us(),
    [begin true = erlang:port_command(P, D), collect(P, byte_size(D)) end || _ <- lists:seq(1, K)],
    Rate = K * byte_size(D) / ((now_us() - T0) / 1.0e6) / 1.0e9,
    close(P),
    Rate.

collect(_P, 0) -> ok;
collect(P, Left) -> receive {P, {data, B}} -> collect(P, Left - iolist_size(B)) end.

%% S7: 10,000 ports open at once.
s7() ->
    case want("S7") of
        true -> s7_();
        false -> skipped
    end.

s7_() ->
    io:format("S7 10,000 ports open at once~n"),
    Runs = [s7_round() || _ <- lists:seq(1, ?ROUNDS)],
    Field = fun(K) -> stats([maps:get(K, R) || R <- Runs]) end,
    Res = maps:from_list([{K, begin {M, Lo, Hi} = Field(K), #{median => M, min => Lo, max => Hi} end}
                          || K <- [opens_per_s, kib_per_port, round_trip_s]]),
    [io:format("  ~-14s median ~.2f~n", [K, maps:get(median, V)]) || {K, V} <- maps:to_list(Res)],
    #{id => <<"S7">>, what => <<"10,000 ports open at once">>, better => higher, results => #{pybridge => Res}}.

s7_round() ->
    N = 10000,
    [W | _] = pybridge_sup:managers(),
    OsPid = pybridge_manager:os_pid(W),
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

%% A small JSON writer for maps, lists, numbers, atoms and binaries.
json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(K), ":", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(L) when is_list(L) -> ["[", lists:join(",", [json(X) || X <- L]), "]"];
json(A) when is_atom(A) -> json(atom_to_binary(A));
json(B) when is_binary(B) -> [$", string:replace(string:replace(B, "\\", "\\\\", all), "\"", "\\\"", all), $"];
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 3}, compact]).
