%% `make bench`, issue 16's scenarios: pybridge pools across nodes. Peer nodes are started
%% on this machine with OTP's peer (this node becomes distributed for them) and kept for
%% the whole run; each runs the pybridge application with the bench drivers.
-module(pb_bench_pool).
-export([call_p50/1, call_rate/1, scale_out/1]).

-define(CALLS, 5000).
-define(TERM, {ok, 42, <<"hello">>}).

%% P1: the p50 of one pool_call round trip, in us: direct (pybridge:call on a local port,
%% no pool), local (a pool member on this node), remote (the only member one hop away).
call_p50(direct) ->
    P = pybridge:open("bench_drivers:Echo", [binary]),
    Us = p50([fun() -> pybridge:call(P, 0, ?TERM) end || _ <- lists:seq(1, ?CALLS)]),
    port_close(P),
    Us;
call_p50(Where) ->
    with_pool(Where, "bench_drivers:Echo", 1,
              fun(Pool) -> p50([fun() -> pybridge:pool_call(Pool, 0, ?TERM) end
                                || _ <- lists:seq(1, ?CALLS)]) end).

%% P2: pool_call throughput, calls/s: 16 callers, 4 members here or one hop away.
call_rate(Where) ->
    with_pool(Where, "bench_drivers:Echo", 4,
              fun(Pool) -> rate(Pool, 16, 20000) end).

%% P3: calls/s of I/O-bound members (each call waits 10 ms), 4 members on each of 1 or 3
%% nodes, under the same load: 24 callers on this node, 1200 calls.
scale_out(Nodes) ->
    Peers = lists:sublist(peers(), Nodes),
    [{ok, _} = erpc:call(N, pybridge, start_pool, [scale, "bench_drivers:Waits10ms", #{size => 4}])
     || N <- Peers],
    wait_members(scale, 4 * Nodes),
    Rate = rate(scale, 24, 1200),
    [ok = erpc:call(N, pybridge, stop_pool, [scale]) || N <- Peers],
    Rate.

with_pool(local, Spec, Size, F) ->
    {ok, _} = pybridge:start_pool(bench, Spec, #{size => Size}),
    try F(bench) after pybridge:stop_pool(bench) end;
with_pool(remote, Spec, Size, F) ->
    [Peer | _] = peers(),
    {ok, _} = erpc:call(Peer, pybridge, start_pool, [bench, Spec, #{size => Size}]),
    wait_members(bench, Size),
    try F(bench) after erpc:call(Peer, pybridge, stop_pool, [bench]) end.

p50(Calls) ->
    [F() || F <- lists:sublist(Calls, 500)],
    Ts = [begin T0 = erlang:monotonic_time(nanosecond), _ = F(),
                erlang:monotonic_time(nanosecond) - T0 end || F <- Calls],
    lists:nth(length(Ts) div 2, lists:sort(Ts)) / 1000.

%% N callers share Total calls; calls/s from the first call to the last answer.
rate(Pool, N, Total) ->
    Self = self(),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() ->
                           [?TERM = pybridge:pool_call(Pool, 0, ?TERM, #{wait => true, timeout => 60000})
                            || _ <- lists:seq(1, Total div N)],
                           Self ! {done, self()}
                       end) || _ <- lists:seq(1, N)],
    [receive {done, P} -> ok end || P <- Pids],
    (Total div N) * N / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6).

wait_members(Pool, N) ->
    case length(pg:get_members(pybridge_pg, Pool)) >= N of
        true -> ok;
        false -> timer:sleep(10), wait_members(Pool, N)
    end.

%% Three peers, started on first use: each with this node's code path and the bench
%% drivers.
peers() ->
    case persistent_term:get(?MODULE, undefined) of
        undefined ->
            node() =:= nonode@nohost andalso begin
                _ = os:cmd("epmd -daemon"),
                {ok, _} = net_kernel:start([list_to_atom(peer:random_name(pb_bench)), shortnames])
            end,
            Peers = [peer() || _ <- [1, 2, 3]],
            persistent_term:put(?MODULE, Peers),
            Peers;
        Peers ->
            Peers
    end.

peer() ->
    Paths = [P || P <- code:get_path(), string:find(P, "_build") =/= nomatch],
    {ok, _, Node} = peer:start(#{name => peer:random_name(pb_bench_peer),
                                 args => ["-setcookie", atom_to_list(erlang:get_cookie()),
                                          "-pa" | Paths]}),
    ok = erpc:call(Node, application, load, [pybridge]),
    ok = erpc:call(Node, application, set_env, [pybridge, python_path, [filename:absname("bench")]]),
    {ok, _} = erpc:call(Node, application, ensure_all_started, [pybridge]),
    Node.
