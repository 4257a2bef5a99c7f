%% Issue 12, worker lifecycle: deaths never escalate, are noticed however the worker died
%% (a child holding its descriptors too), are reported with their status, and stay inside
%% their worker group; the worker's descriptors stay out of programs it runs. Against a
%% real node started permanent: if the application ended, the node would halt. The tests
%% trap exits and leave it so: a dead port's exit signal may come after a test ends.
-module(pybridge_lifecycle_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

-define(MIB, (1 bsl 20)).

lifecycle_test_() ->
    {setup, fun start/0, fun stop/1,
     [{timeout, 120, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()]}.

tests() ->
    [crash_loop_never_escalates, death_seen_through_a_forked_child,
     death_seen_through_popen_child, exit_status_and_signal_reported,
     descriptors_are_close_on_exec, groups_take_their_ports, named_drivers_take_their_group,
     unknown_group_is_badarg,
     a_group_keeps_its_deaths, a_group_keeps_its_hangs, memory_limit_bounds_a_group,
     crash_loop_under_port_locking, exit_in_stop_ends_only_its_worker].

start() ->
    _ = application:load(pybridge),
    ok = application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
    ok = application:set_env(pybridge, worker_groups,
                             #{isolated => #{size => 1},
                               capped => #{size => 1, memory_limit => 256 * ?MIB}}),
    ok = application:set_env(pybridge, crash_loop, #{deaths => 5, period => 10000,
                                                     refuse => 2000}),
    {ok, _} = application:ensure_all_started(pybridge, permanent).

stop(_) ->
    ok = application:stop(pybridge),
    ok = application:unset_env(pybridge, worker_groups),
    ok = application:unset_env(pybridge, crash_loop).

open(Spec, Opts) -> pybridge:open(Spec, [binary | Opts]).

group_pids(Group) ->
    [pybridge_manager:os_pid(M) || M <- pybridge_sup:managers(Group)].

%% every worker of the group has a live worker again (stats/0 lists only those)
restarted(Group) ->
    Size = length(pybridge_sup:managers(Group)),
    wait_until(fun() -> length([S || S = #{group := G} <- pybridge:stats(), G =:= Group]) =:= Size
               end, 5000).

running() ->
    lists:keymember(pybridge, 1, application:which_applications()).

wait_until(F, Ms) ->
    pybridge_test_lib:wait_until(F, Ms).

open_error(Spec, Opts) ->
    try open(Spec, Opts) of P -> {ok, P} catch error:R -> R end.

flush() ->
    receive _ -> flush() after 0 -> ok end.

drain() ->
    receive M -> [M | drain()] after 0 -> [] end.

with_log(F) ->
    ok = logger:add_handler(lifecycle_capture, pybridge_log_capture, #{config => #{to => self()}}),
    try F() after logger:remove_handler(lifecycle_capture) end.

logged(Pattern) ->
    receive {logged, error, Text, _} ->
        case string:find(Text, Pattern) of nomatch -> logged(Pattern); _ -> Text end
    after 3000 -> nothing_logged
    end.

%% ---------------------------------------------------------------------------

%% os._exit(9) in start, 60 opens: every open fails with a named error, crash_loop comes,
%% the (permanent) application and the node stay up, another driver opens throughout.
crash_loop_never_escalates() ->
    process_flag(trap_exit, true),
    Results = with_log(fun() ->
        Rs = [begin
                  R = open_error("exits_in_start:ExitsInStart", []),
                  Good = open("upper:Upper", []),
                  ?assertEqual("ih", pybridge:control(Good, 0, <<"hi">>)),
                  port_close(Good),
                  R
              end || _ <- lists:seq(1, 60)],
        ?assertNotEqual(nothing_logged, logged("exits_in_start:ExitsInStart killed its worker")),
        Rs
    end),
    ?assert(lists:all(fun(R) -> lists:member(R, [{pybridge, worker_down},
                                                 {pybridge, crash_loop}]) end, Results)),
    ?assert(lists:member({pybridge, crash_loop}, Results)),
    ?assert(running()),
    %% the refusal ends (2 s here) and the class is tried again
    timer:sleep(2100),
    ?assertEqual({pybridge, worker_down}, open_error("exits_in_start:ExitsInStart", [])),
    ?assert(restarted(default)),
    ?assert(running()),
    flush().

%% The worker dies while a child it forked holds its pipes and ctl socket: its ports exit
%% worker_down, a waiting control is released, stats() forgets the pid, all within 1 s.
death_seen_through_a_forked_child() ->
    death_seen_through_child("fork").

death_seen_through_popen_child() ->
    death_seen_through_child("popen").

death_seen_through_child(How) ->
    process_flag(trap_exit, true),
    Ports = [pybridge:open("forks_a_child:ForksAChild", How, [binary, {worker_group, isolated}])
             || _ <- lists:seq(1, 3)],
    Children = [list_to_integer(pybridge:control(P, 0, <<>>)) || P <- Ports],
    [Worker] = group_pids(isolated),
    Self = self(),
    %% The kill comes from a shell of its own, which notes when: the waiting control
    %% blocks a scheduler, so no Erlang timer could fire in time (FACTS).
    Stamp = filename:absname("_build/test/kill_stamp"),
    os:cmd("(sleep 0.3; date +%s%N > " ++ Stamp ++ "; kill -9 " ++ integer_to_list(Worker)
           ++ ") >/dev/null 2>&1 &"),
    Waiter = spawn_link(fun() ->
        Self ! {waited, catch pybridge:control(hd(Ports), 1, <<"3000">>)}
    end),
    Reasons = [receive {'EXIT', P, R} -> R after 3000 -> timeout end || P <- Ports],
    Now = os:system_time(nanosecond),
    {ok, Killed} = file:read_file(Stamp),
    Ms = (Now - binary_to_integer(string:trim(Killed))) div 1000000,
    ?assertEqual(lists:duplicate(3, {pybridge, worker_down}), Reasons),
    ?assertMatch({waited, {'EXIT', {{pybridge, worker_down}, _}}},
                 receive {waited, _} = W -> W after 3000 -> timeout end),
    ?debugFmt("~s: ports exited ~p ms after the kill", [How, Ms]),
    ?assert(Ms < 1000),
    ?assertNot(lists:member(Worker, [maps:get(os_pid, S) || S <- pybridge:stats()])),
    %% the children were alive all along, holding the descriptors
    ?assert(lists:all(fun(C) -> os:cmd("kill -0 " ++ integer_to_list(C) ++ " 2>&1") =:= "" end,
                      Children)),
    [os:cmd("kill -9 " ++ integer_to_list(C)) || C <- Children],
    receive {'EXIT', Waiter, _} -> ok after 1000 -> ok end,
    ?assert(restarted(isolated)),
    flush().

%% os._exit(7) and SIGSEGV: the status is in the log and in last_exit/1, never -1.
exit_status_and_signal_reported() ->
    process_flag(trap_exit, true),
    [M] = pybridge_sup:managers(isolated),
    with_log(fun() ->
        P1 = open("dies_on_control:DiesOnControl", [{worker_group, isolated}]),
        ?assertError({pybridge, worker_down}, pybridge:control(P1, 0, <<"7">>)),
        ?assertNotEqual(nothing_logged, logged("exited with status 7")),
        ?assertEqual({exit_status, 7}, pybridge_manager:last_exit(M)),
        ?assert(restarted(isolated)),
        P2 = open("dies_on_control:DiesOnControl", [{worker_group, isolated}]),
        ?assertError({pybridge, worker_down}, pybridge:control(P2, 1, <<"11">>)),
        ?assertNotEqual(nothing_logged, logged("killed by signal 11 (SIGSEGV)")),
        ?assertEqual({signal, 11}, pybridge_manager:last_exit(M))
    end),
    ?assert(restarted(isolated)),
    flush().

%% A program the driver runs (close_fds=False) inherits no descriptor of the worker: not
%% ctl, not a port's channel, not the shared memory, not the log pipes.
descriptors_are_close_on_exec() ->
    P = open("lists_fds:ListsFds", []),
    %% a second port and a large reply: more channels, and the shared memory, exist
    Q = open("big_echo:BigEcho", []),
    _ = pybridge:control(Q, 0, binary:copy(<<"x">>, 1 bsl 20)),
    Lines = string:lexemes(pybridge:control(P, 0, <<>>), "\n"),
    Fds = [{list_to_integer(N), T} || L <- Lines, [N, T] <- [string:split(L, " ")]],
    ?assert(length(Fds) >= 3),
    Leaked = [{N, T} || {N, T} <- Fds, N > 2,
                        lists:any(fun(K) -> string:prefix(T, K) =/= nomatch end,
                                  ["socket:", "pipe:", "/memfd:", "anon_inode:"])],
    ?assertEqual([], Leaked),
    port_close(P),
    port_close(Q).

%% The option and the class attribute place a port in its group's worker.
groups_take_their_ports() ->
    [Isolated] = group_pids(isolated),
    P = open("upper:Upper", [{worker_group, isolated}]),
    ?assertEqual({os_pid, Isolated}, erlang:port_info(P, os_pid)),
    Q = open("dies_on_control:Isolated", []),
    ?assertEqual({os_pid, Isolated}, erlang:port_info(Q, os_pid)),
    R = open("upper:Upper", []),
    ?assertEqual({os_pid, hd(group_pids(default))}, erlang:port_info(R, os_pid)),
    ?assertEqual([capped, default, isolated],
                 lists:usort([maps:get(group, S) || S <- pybridge:stats()])),
    [port_close(X) || X <- [P, Q, R]],
    ok.

%% A named driver's ports go where the class's worker_group attribute says, as opens do;
%% a class naming a group this node lacks is refused at load.
named_drivers_take_their_group() ->
    ?assert(restarted(isolated)),
    [Isolated] = group_pids(isolated),
    ok = pybridge:load_driver("iso_named", "dies_on_control:Isolated"),
    ok = pybridge:load_driver("plain_named", "upper:Upper"),
    try
        P = open_port({spawn_driver, "iso_named"}, [binary]),
        ?assertEqual({os_pid, Isolated}, erlang:port_info(P, os_pid)),
        Q = open_port({spawn_driver, "plain_named"}, [binary]),
        ?assertEqual({os_pid, hd(group_pids(default))}, erlang:port_info(Q, os_pid)),
        [port_close(X) || X <- [P, Q]],
        ?assertEqual({error, {unknown_worker_group, <<"nowhere">>}},
                     pybridge:load_driver("lost_named", "in_a_group:Nowhere"))
    after
        pybridge:unload_driver("iso_named"),
        pybridge:unload_driver("plain_named")
    end.

unknown_group_is_badarg() ->
    ?assertError(badarg, open("upper:Upper", [{worker_group, nowhere}])),
    ?assertError(badarg, open("upper:Upper", [{worker_group, "isolated"}])).

%% A driver that kills its group's worker reaches no port of another group.
a_group_keeps_its_deaths() ->
    process_flag(trap_exit, true),
    Others = [open("upper:Upper", []) || _ <- lists:seq(1, 3)],
    [begin
         ?assert(restarted(isolated)),
         P = open("dies_on_control:DiesOnControl", [{worker_group, isolated}]),
         ?assertError({pybridge, worker_down}, pybridge:control(P, 1, <<"9">>)),
         [?assertEqual("ih", pybridge:control(O, 0, <<"hi">>)) || O <- Others]
     end || _ <- lists:seq(1, 3)],
    ?assertEqual([], [R || {'EXIT', O, R} <- drain(), lists:member(O, Others)]),
    [port_close(O) || O <- Others],
    ?assert(restarted(isolated)),
    flush().

%% A driver that sleeps in control holds up its group's worker only.
a_group_keeps_its_hangs() ->
    ?assert(restarted(isolated)),
    Slow = open("slow_control:SlowControl", [{worker_group, isolated}]),
    Other = open("upper:Upper", []),
    Self = self(),
    spawn(fun() -> Self ! {slow, catch pybridge:control(Slow, 0, <<"2000">>)} end),
    timer:sleep(50),
    T0 = erlang:monotonic_time(millisecond),
    [?assertEqual("ih", pybridge:control(Other, 0, <<"hi">>)) || _ <- lists:seq(1, 20)],
    ?assert(erlang:monotonic_time(millisecond) - T0 < 400),
    ?assertEqual({slow, "0"}, receive {slow, _} = S -> S after 3000 -> none end),
    port_close(Slow),
    port_close(Other).

%% Under the group's memory_limit (256 MiB of address space) an allocation without bound
%% ends as a MemoryError in the callback, or as that worker's death; other groups go on.
memory_limit_bounds_a_group() ->
    process_flag(trap_exit, true),
    Other = open("upper:Upper", []),
    P = open("allocates_without_bound:AllocatesWithoutBound", [{worker_group, capped}]),
    R = try pybridge:control(P, 0, <<>>) catch error:E -> E end,
    ?assert(case R of
                {python, 'builtins.MemoryError', _, _} -> true;
                {pybridge, worker_down} -> true;
                _ -> false
            end),
    ?assertEqual("ih", pybridge:control(Other, 0, <<"hi">>)),
    catch port_close(P),
    port_close(Other),
    ?assert(restarted(capped)),
    flush().

%% The same crash loop when start runs on the port's own thread (port-level locking).
crash_loop_under_port_locking() ->
    process_flag(trap_exit, true),
    ?assert(restarted(default)),
    Rs = [open_error("exits_in_start:ExitsInStartPortLevel", []) || _ <- lists:seq(1, 30)],
    ?assert(lists:all(fun(R) -> lists:member(R, [{pybridge, worker_down},
                                                 {pybridge, crash_loop}]) end, Rs)),
    ?assert(lists:member({pybridge, crash_loop}, Rs)),
    ?assert(running()),
    ?assert(restarted(default)),
    Good = open("upper:Upper", []),
    ?assertEqual("ih", pybridge:control(Good, 0, <<"hi">>)),
    port_close(Good),
    flush().

%% os._exit in stop: port_close returns, the worker's other port exits worker_down (named),
%% other groups go on, the worker comes back; under both lockings.
exit_in_stop_ends_only_its_worker() ->
    process_flag(trap_exit, true),
    [begin
         ?assert(restarted(isolated)),
         Other = open("upper:Upper", []),
         Peer = open("upper:Upper", [{worker_group, isolated}]),
         P = open("exits_in_stop:" ++ Class, [{worker_group, isolated}]),
         ?assert(port_close(P)),
         receive {'EXIT', Peer, Why} -> ?assertEqual({pybridge, worker_down}, Why)
         after 3000 -> error({peer_kept, Class})
         end,
         ?assertEqual("ih", pybridge:control(Other, 0, <<"hi">>)),
         port_close(Other)
     end || Class <- ["ExitsInStop", "ExitsInStopPortLevel"]],
    ?assert(restarted(isolated)),
    ?assert(running()),
    flush().

%% pybridge_config brings worker_groups and crash_loop into range, as it does the rest.
config_clamps_groups_test() ->
    _ = application:load(pybridge),
    ok = application:set_env(pybridge, worker_groups,
                             #{b => #{size => 100, memory_limit => 1},
                               a => #{size => 0, memory_limit => 0},
                               "c" => #{size => 1},
                               default => not_a_map}),
    ok = application:set_env(pybridge, crash_loop, #{deaths => 0, period => -5}),
    try
        ?assertEqual([#{name => default, index => 0, size => 1, memory_limit => 0},
                      #{name => a, index => 1, size => 1, memory_limit => 0},
                      #{name => b, index => 2, size => 62, memory_limit => 32 * ?MIB}],
                     pybridge_config:worker_groups()),
        ?assertEqual({ok, 2}, pybridge_config:group_index(b)),
        ?assertEqual(error, pybridge_config:group_index(c)),
        ?assertEqual(#{deaths => 1, period => 0, refuse => 30000}, pybridge_config:crash_loop())
    after
        application:unset_env(pybridge, worker_groups),
        application:unset_env(pybridge, crash_loop)
    end.
