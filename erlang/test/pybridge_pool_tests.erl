%% Issue 16, pools across a cluster: three real extra nodes started with OTP's peer on this
%% machine, each running the pybridge application with its own Python worker; pools on some
%% of them, called from this node (which runs the application but no member of those
%% pools) and from one another.
-module(pybridge_pool_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

-define(SPEC, "answers_with_its_pid:AnswersWithItsPid").

pool_test_() ->
    {setup, fun start/0, fun stop/1,
     fun(Cluster) -> [{timeout, 60, {atom_to_list(T), fun() -> ?MODULE:T(Cluster) end}}
                      || T <- tests()] end}.

%% node_stopped_mid_load stops node b: it comes last of those that use b
tests() ->
    [routes_from_a_node_without_members, local_members_first, errors_come_back_as_locally,
     worker_killed_mid_call, retry_goes_to_another_member, overloaded_under_flood,
     restart_backs_off, pool_spec_under_a_user_supervisor,
     started_and_stopped_100_times_leaves_nothing, node_stopped_mid_load].

start() ->
    Started = case node() of
                  nonode@nohost ->
                      _ = os:cmd("epmd -daemon"),
                      {ok, _} = net_kernel:start([list_to_atom(peer:random_name(pool_tests)),
                                                  shortnames]),
                      true;
                  _ -> false
              end,
    {ok, _} = pybridge_test_lib:start(),
    Peers = [{Tag, peer(Tag)} || Tag <- [a, b, c]],
    Nodes = [N || {_, {_, N}} <- Peers],
    [true = erpc:call(N, net_kernel, connect_node, [M]) || N <- Nodes, M <- Nodes, N < M],
    #{peers => Peers, started_dist => Started,
      a => node_of(a, Peers), b => node_of(b, Peers), c => node_of(c, Peers)}.

stop(#{peers := Peers, started_dist := Started}) ->
    [catch peer:stop(P) || {_, {P, _}} <- Peers],
    _ = pybridge_test_lib:stop(ok),
    Started andalso net_kernel:stop().

node_of(Tag, Peers) ->
    {_, N} = proplists:get_value(Tag, Peers),
    N.

%% A node with this node's code path (the test build's ebin dirs) and the application
%% started on the venv's Python. Its crash_loop is lenient: tests kill its worker on purpose.
peer(Tag) ->
    Paths = [P || P <- code:get_path(), string:find(P, "_build") =/= nomatch],
    {ok, Peer, Node} = peer:start(#{name => peer:random_name(Tag),
                                    args => ["-setcookie", atom_to_list(erlang:get_cookie()),
                                             "-pa" | Paths]}),
    ok = erpc:call(Node, application, load, [pybridge]),
    Env = [{python, os:getenv("PYBRIDGE_PYTHON")},
           {python_path, [filename:absname("tests/drivers")]},
           {crash_loop, #{deaths => 100, period => 10000, refuse => 1000}}],
    [ok = erpc:call(Node, application, set_env, [pybridge, K, V]) || {K, V} <- Env],
    {ok, _} = erpc:call(Node, application, ensure_all_started, [pybridge]),
    {Peer, Node}.

%% ---- helpers ----

start_pool(Nodes, Pool, Opts) ->
    start_pool(Nodes, Pool, ?SPEC, Opts).

start_pool(Nodes, Pool, Spec, Opts) ->
    [{ok, _} = erpc:call(N, pybridge, start_pool, [Pool, Spec, Opts]) || N <- Nodes],
    Size = maps:get(size, Opts, 1) * length(Nodes),
    %% pg tells the other nodes a moment later
    true = wait_until(fun() -> [length(erpc:call(N, pg, get_members, [pybridge_pg, Pool]))
                                || N <- [node() | nodes()]] =:= [Size || _ <- [node() | nodes()]]
                      end, 5000).

stop_pool(Nodes, Pool) ->
    [ok = erpc:call(N, pybridge, stop_pool, [Pool]) || N <- Nodes],
    ok.

%% The members of Pool on Node, as pool_info says.
members(Pool, Node) ->
    maps:get(Node, maps:get(members, pybridge:pool_info(Pool)), []).

served(Pool, Node) ->
    lists:sum([S || #{served := S} <- members(Pool, Node)]).

%% The outcome of F() in a process of its own, sent to the caller as {Tag, Outcome}.
spawn_call(Tag, F) ->
    Self = self(),
    spawn(fun() -> Self ! {Tag, try {ok, F()} catch error:R -> {error, R} end} end).

collect(Tag, N) ->
    [receive {Tag, R} -> R after 30000 -> error(no_answer) end || _ <- lists:seq(1, N)].

%% N callers, each making K calls of F(), at once; every outcome.
flood(N, K, F) ->
    Tag = make_ref(),
    [spawn_call(Tag, fun() -> [F() || _ <- lists:seq(1, K)] end) || _ <- lists:seq(1, N)],
    collect(Tag, N).

wait_until(F, Ms) ->
    pybridge_test_lib:wait_until(F, Ms).

kill(OsPid) ->
    _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ok.

%% The node of the member of Pool that this node has a call in flight at, and the OS pid
%% of its worker (Workers: node -> worker, taken before the call).
busy_worker(Pool, Workers) ->
    true = wait_until(fun() -> busy_members(Pool, 1) =/= [] end, 5000),
    timer:sleep(200),                           % the member hands the call to Python
    [M] = busy_members(Pool, 1),
    {node(M), maps:get(node(M), Workers)}.

busy_members(Pool, Load) ->
    [M || M <- pg:get_members(pybridge_pg, {members, Pool}), pybridge_pool_view:load(M) >= Load].

worker_pid(Node) ->
    [#{os_pid := P}] = erpc:call(Node, pybridge, stats, []),
    P.

%% ---- the tests ----

routes_from_a_node_without_members(#{a := A, b := B}) ->
    start_pool([A, B], routed, #{size => 2}),
    ?assertEqual([], pg:get_local_members(pybridge_pg, routed)),
    Outcomes = flood(8, 5, fun() -> pybridge:pool_call(routed, 1, {20, x}) end),
    Workers = lists:usort([W || {ok, Rs} <- Outcomes, {W, {20, x}} <- Rs]),
    ?assertEqual(lists:sort([worker_pid(A), worker_pid(B)]), Workers),
    ?assertEqual(40, served(routed, A) + served(routed, B)),
    ?assert(served(routed, A) > 0 andalso served(routed, B) > 0),
    %% the driver did not ask for binary control replies: a string, as for a local port
    ?assertEqual("bytes", pybridge:pool_control(routed, 3, [<<"by">>, "tes"])),
    ?assertEqual(ok, pybridge:pool_command(routed, <<"anything">>)),
    #{members := Ms, size := 4} = pybridge:pool_info(routed),
    ?assertEqual([2, 2], [length(maps:get(N, Ms)) || N <- [A, B]]),
    stop_pool([A, B], routed).

local_members_first(#{a := A, b := B}) ->
    start_pool([A, B], near, #{size => 2}),
    start_pool([A, B], spread, #{size => 2, prefer => least_loaded}),
    Load = fun(Pool) ->
               erpc:call(A, ?MODULE, flood, [6, 5, fun() -> pybridge:pool_call(Pool, 1, {20, x}) end])
           end,
    [?assertMatch({ok, [_, _, _, _, _]}, O) || O <- Load(near)],
    ?assertEqual({30, 0}, {served(near, A), served(near, B)}),
    [?assertMatch({ok, [_, _, _, _, _]}, O) || O <- Load(spread)],
    ?assertEqual(30, served(spread, A) + served(spread, B)),
    ?assert(served(spread, B) > 0),
    stop_pool([A, B], near),
    stop_pool([A, B], spread).

errors_come_back_as_locally(#{c := C}) ->
    start_pool([C], errors, #{size => 1, timeout => 300}),
    ?assertError({python, 'builtins.ValueError', <<"refused by the member">>, <<"Traceback", _/binary>>},
                 pybridge:pool_call(errors, 2, x)),
    ?assertError({pybridge, timeout}, pybridge:pool_call(errors, 1, {600, x})),
    %% the port outlived its timeout: once Python is done with it, the member goes on
    timer:sleep(400),
    Worker = worker_pid(C),
    ?assertEqual({Worker, still_here}, pybridge:pool_call(errors, 0, still_here)),
    ?assertError({pybridge, no_members}, pybridge:pool_call(nobody_started_this, 0, x)),
    ?assertError(badarg, pybridge:pool_call(errors, -1, x)),
    ?assertError(badarg, pybridge:pool_call(errors, 0, x, #{retry => -1})),
    ?assertError(badarg, pybridge:pool_call(errors, 0, x, #{colour => blue})),
    ?assertError(badarg, pybridge:pool_control(errors, 0, not_iodata)),
    ?assertError(badarg, pybridge:start_pool(bad, ?SPEC, #{size => 0})),
    ?assertError(badarg, pybridge:start_pool(bad, ?SPEC, #{prefer => nearest})),
    ?assertMatch({error, {python, 'builtins.ValueError', _, _}},
                 erpc:call(C, pybridge, start_pool, [bad, "start_fails:StartFails", #{}])),
    ?assertEqual({error, already_started}, erpc:call(C, pybridge, start_pool, [errors, ?SPEC, #{}])),
    stop_pool([C], errors),
    ?assertEqual({error, not_found}, erpc:call(C, pybridge, stop_pool, [errors])).

worker_killed_mid_call(#{b := B}) ->
    start_pool([B], killed, #{size => 2}),
    Old = worker_pid(B),
    Tag = make_ref(),
    spawn_call(Tag, fun() -> pybridge:pool_call(killed, 1, {3000, x}) end),
    {B, Old} = busy_worker(killed, #{B => Old}),
    kill(Old),
    ?assertEqual([{error, {pybridge, member_down}}], collect(Tag, 1)),
    %% both members were on that worker: both restarted, each counted
    true = wait_until(fun() -> #{restarts := R} = pybridge:pool_info(killed),
                               R =:= 2 andalso [ready, ready] =:= [S || #{state := S} <- members(killed, B)] andalso
                                   length(pg:get_members(pybridge_pg, killed)) =:= 2
                      end, 10000),
    {New, again} = pybridge:pool_call(killed, 0, again),
    ?assertNotEqual(Old, New),
    stop_pool([B], killed).

retry_goes_to_another_member(#{a := A, c := C}) ->
    start_pool([A, C], retried, #{size => 1}),
    Workers = #{A => worker_pid(A), C => worker_pid(C)},
    Tag = make_ref(),
    spawn_call(Tag, fun() -> pybridge:pool_call(retried, 1, {1500, x}, #{retry => 1}) end),
    {Node, OsPid} = busy_worker(retried, Workers),
    [Other] = [A, C] -- [Node],
    kill(OsPid),
    Survivor = worker_pid(Other),
    ?assertEqual([{ok, {Survivor, {1500, x}}}], collect(Tag, 1)),
    true = wait_until(fun() -> length(pg:get_members(pybridge_pg, retried)) =:= 2 end, 10000),
    stop_pool([A, C], retried).

overloaded_under_flood(#{c := C}) ->
    start_pool([C], flooded, #{size => 1, max_queue => 2}),
    Outcomes = flood(20, 1, fun() -> pybridge:pool_call(flooded, 1, {300, x}) end),
    Ok = length([O || {ok, _} = O <- Outcomes]),
    Over = length([O || {error, {pybridge, overloaded}} = O <- Outcomes]),
    ?assertEqual(20, Ok + Over),
    %% one running and two queued at most; the member counted each refusal
    ?assert(Ok >= 3 andalso Over > 0),
    ?assertMatch([#{refused := Over}], members(flooded, C)),
    %% waiting for room instead: every call is served, in turn
    Waited = flood(8, 1, fun() -> pybridge:pool_call(flooded, 1, {50, x}, #{wait => true,
                                                                         timeout => 20000}) end),
    ?assertEqual(8, length([O || {ok, _} = O <- Waited])),
    stop_pool([C], flooded),
    %% a wait bounded by its timeout ends overloaded: a member with no queue, busy 3 s
    start_pool([C], full, #{size => 1, max_queue => 0}),
    Tag = make_ref(),
    spawn_call(Tag, fun() -> pybridge:pool_call(full, 1, {3000, x}) end),
    true = wait_until(fun() -> busy_members(full, 1) =/= [] end, 2500),
    timer:sleep(200),                           % the member hands the call to Python
    %% the member's node is not held by the call in flight (its wait holds no scheduler):
    %% pool_info shows the busy member, and the bounded wait ends overloaded
    ?assertMatch([#{in_flight := 1}], members(full, C)),
    ?assertError({pybridge, overloaded},
                 pybridge:pool_call(full, 0, x, #{wait => true, timeout => 200})),
    ?assertMatch([{ok, _}], collect(Tag, 1)),
    stop_pool([C], full).

restart_backs_off(#{c := C}) ->
    File = filename:absname("_build/test/pool_refuse_" ++ os:getpid()),
    _ = file:delete(File),
    start_pool([C], backoff, "refuses_while_file_exists:RefusesWhileFileExists",
               #{size => 1, args => File}),
    [#{os_pid := OsPid, restarts := 0}] = members(backoff, C),
    ok = file:write_file(File, <<>>),
    kill(OsPid),
    timer:sleep(2500),
    %% each new member fails to open and dies: 100, 200, 400, 800, 1600 ms apart
    [#{restarts := R, backoff_ms := Backoff, state := backoff}] = members(backoff, C),
    ?assert(R >= 3 andalso R =< 7),
    ?assert(Backoff >= 800),
    ?assertError({pybridge, no_members}, pybridge:pool_call(backoff, 0, x)),
    ok = file:delete(File),
    true = wait_until(fun() -> pg:get_members(pybridge_pg, backoff) =/= [] end, 8000),
    ?assertEqual(worker_pid(C), pybridge:pool_call(backoff, 0, x)),
    stop_pool([C], backoff).

pool_spec_under_a_user_supervisor(_) ->
    Spec = pybridge:pool_spec(supervised, ?SPEC, #{size => 2}),
    {ok, Sup} = supervisor:start_link(?MODULE, {user_sup, Spec}),
    ?assertMatch({_, here}, pybridge:pool_call(supervised, 0, here)),
    ?assertEqual(2, length(pg:get_local_members(pybridge_pg, supervised))),
    unlink(Sup),
    Ref = monitor(process, Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, _, _, _} -> ok end,
    ?assertEqual([], pg:get_members(pybridge_pg, supervised)),
    ?assertEqual([], pg:get_members(pybridge_pg, {members, supervised})).

%% supervisor callback of pool_spec_under_a_user_supervisor
init({user_sup, Spec}) ->
    {ok, {#{strategy => one_for_one}, [Spec]}}.

started_and_stopped_100_times_leaves_nothing(_) ->
    Snapshot = fun() ->
                   #{processes => erlang:system_info(process_count), ports => length(erlang:ports()),
                     workers => [{P, N} || #{os_pid := P, ports := N} <- pybridge:stats()],
                     pools => supervisor:which_children(pybridge_pools),
                     view => ets:info(pybridge_pool_view, size)}
               end,
    Before = Snapshot(),
    [begin
         {ok, _} = pybridge:start_pool(cycled, ?SPEC, #{size => 2}),
         {_, I} = pybridge:pool_call(cycled, 0, I),
         ok = pybridge:stop_pool(cycled)
     end || I <- lists:seq(1, 100)],
    ?assert(wait_until(fun() -> Snapshot() =:= Before end, 5000)),
    ?assertEqual([], pg:get_members(pybridge_pg, {members, cycled})).

node_stopped_mid_load(#{a := A, b := B}) ->
    start_pool([A, B], survived, #{size => 2}),
    [WA, WB] = [worker_pid(N) || N <- [A, B]],
    Self = self(),
    Callers = [spawn_link(fun() -> caller(Self, K, 1, []) end) || K <- lists:seq(1, 6)],
    timer:sleep(500),
    %% each call takes 150 ms: b's members are busy nearly all the time
    true = wait_until(fun() -> lists:sum([F || #{in_flight := F} <- members(survived, B)]) > 0
                      end, 2000),
    BeamPid = erpc:call(B, os, getpid, []),
    true = monitor_node(B, true),
    _ = os:cmd("kill -9 " ++ BeamPid),
    receive {nodedown, B} -> ok after 10000 -> error(no_nodedown) end,
    %% from when pg has taken b's members out of this node's view
    true = wait_until(fun() -> [M || M <- pg:get_members(pybridge_pg, survived), node(M) =:= B] =:= []
                      end, 5000),
    Seen = erlang:monotonic_time(millisecond),
    timer:sleep(500),
    [C ! stop || C <- Callers],
    Logs = lists:append([receive {log, C, L} -> L end || C <- Callers]),
    Issued = length(Logs),
    Ok = [{T, W, Req, Reply} || {ok, T, W, Req, Reply} <- Logs],
    Down = [T || {down, T} <- Logs],
    %% every call ended once, answered or member_down: none vanished, none failed otherwise
    ?assertEqual(Issued, length(Ok) + length(Down)),
    ?assert(length(Down) > 0),
    %% what was acknowledged is what was asked, and came from a member's worker
    ?assertEqual(lists:sum([erlang:crc32(term_to_binary(Q)) || {_, _, Q, _} <- Ok]),
                 lists:sum([erlang:crc32(term_to_binary(R)) || {_, _, _, R} <- Ok])),
    ?assertEqual([], [W || {_, W, _, _} <- Ok, W =/= WA, W =/= WB]),
    %% calls made once pg took the node's members out went to the survivor, all answered
    After = [W || {T, W, _, _} <- Ok, T > Seen],
    ?assert(length(After) > 0),
    ?assertEqual([], [X || {down, T} = X <- Logs, T > Seen]),
    ?assertEqual([WA], lists:usort(After)),
    %% the survivor counted every call it answered
    ?assertEqual(length([W || {_, W, _, _} <- Ok, W =:= WA]), served(survived, A)),
    stop_pool([A], survived).

%% One caller of node_stopped_mid_load: calls in a loop, logging each outcome with its
%% start time, until told to stop.
caller(Parent, K, Seq, Log) ->
    receive stop -> Parent ! {log, self(), Log}
    after 0 ->
        Req = {150, {K, Seq, rand:bytes(16)}},
        T = erlang:monotonic_time(millisecond),
        Entry = try pybridge:pool_call(survived, 1, Req) of
                    {W, Reply} -> {ok, T, W, Req, Reply}
                catch error:{pybridge, member_down} -> {down, T}
                end,
        caller(Parent, K, Seq + 1, [Entry | Log])
    end.
