%% pybridge:control/3 and call/3 whose answer Python does not give within the driver's
%% spin: the caller waits for it as a message, its scheduler free (docs/PROTOCOL.md,
%% "Reserved port_call commands"; tests/drivers/calls_erlang.py, sleeper.py). The port is
%% free meanwhile (pybridge:info answers, counting it pending), Port.call_erlang inside
%% such a callback answers, however many, from the callback or its coroutine, under either
%% locking; requests of other callers queue behind in order; timeouts, the caller's death,
%% the port's close and the worker's death end in named errors; nothing stays behind.
-module(pybridge_pending_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

pending_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 120, {atom_to_list(T), fun ?MODULE:T/0}}
      || T <- [the_port_is_free_while_python_works, every_call_in_a_blocking_call_answers,
               in_a_blocking_control, many_calls_in_one_callback_leave_no_process,
               from_a_thread_the_callback_waits_for, from_a_coroutine,
               under_port_level_locking, errors_and_timeouts, a_function_that_needs_the_port,
               other_callers_queue_in_order, a_late_answer_is_dropped,
               the_caller_s_death_leaves_the_port_serving, closing_the_port_is_badarg,
               the_worker_s_death_is_worker_down, raw_port_call_keeps_its_way]]}.

%% -- called from Python --
raise_here() -> throw(my_throw).

control_port(P) -> erlang:port_control(P, 99, <<>>).

call_port(P) -> pybridge:call(P, 1, {erlang, node, []}).

sleep_registered(Name, Ms) ->
    register(Name, self()),
    timer:sleep(Ms),
    done.

open() -> pybridge:open("calls_erlang:CallsErlang", [binary]).

now_ms() -> erlang:monotonic_time(millisecond).

no_replies() ->
    receive {pybridge_reply, _, _, _} = M -> {stray, M} after 0 -> none end.

%% Once a request another process made of P is pending (in Python, its caller waiting).
until_pending(P) ->
    true = pybridge_test_lib:wait_until(fun() -> maps:get(pending, pybridge:info(P)) > 0 end,
                                        5000).

%% While Python works on a request, the port is not held: another process reads its
%% counters (a port op that needs the port) before the answer comes.
the_port_is_free_while_python_works() ->
    P = open(),
    Self = self(),
    spawn_link(fun() -> Self ! {slow, pybridge:call(P, 2, {timer, sleep, [1000]})} end),
    until_pending(P),
    ?assertMatch(#{pending := 1}, pybridge:info(P)),
    ?assertEqual(nothing_yet, receive {slow, _} -> answered after 0 -> nothing_yet end),
    ?assertEqual({slow, {ok, ok}}, receive {slow, _} = M -> M after 5000 -> none end),
    ?assertMatch(#{pending := 0}, pybridge:info(P)),
    ?assertEqual(none, no_replies()),
    pybridge:close(P).

%% It used to time out almost every time: the call's work sat behind the held scheduler.
every_call_in_a_blocking_call_answers() ->
    P = open(),
    [?assertEqual({I, {ok, node()}}, {I, pybridge:call(P, 2, {erlang, node, []})})
     || I <- lists:seq(1, 50)],
    ?assertEqual({ok, 3000000}, pybridge:call(P, 3, {erlang, byte_size, 3000000})),
    pybridge:close(P).

in_a_blocking_control() ->
    P = open(),
    ok = pybridge:call(P, 1, {lists, reverse, [[1, 2, 3]]}),
    [begin
         ?assertEqual("done", pybridge:control(P, 2, <<>>)),
         ?assertEqual({control, {ok, [3, 2, 1]}}, receive {control, _} = M -> M after 5000 -> none end)
     end || _ <- lists:seq(1, 20)],
    pybridge:close(P).

many_calls_in_one_callback_leave_no_process() ->
    P = open(),
    ?assertEqual({ok, node()}, pybridge:call(P, 2, {erlang, node, []})),
    Before = erlang:system_info(process_count),
    ?assertEqual({ok, 3}, pybridge:call(P, 4, {2000, {erlang, length, [[a, b, c]]}})),
    %% the last guards may still be exiting when the answer is in
    ?assert(pybridge_test_lib:wait_until(
              fun() -> erlang:system_info(process_count) =:= Before end, 1000)),
    pybridge:close(P).

%% Under driver-level locking the loop thread reads the answers to other threads' calls:
%% a callback that waits for its thread holds the answer back, and the call ends in the
%% timeout, never a hang (docs/API.md). Under port-level locking it answers (below).
from_a_thread_the_callback_waits_for() ->
    P = open(),
    T0 = now_ms(),
    ?assertEqual(timeout, pybridge:call(P, 5, {lists, reverse, [[a, b, c]], 0.3})),
    ?assert(now_ms() - T0 < 3000),
    ?assertEqual({ok, node()}, pybridge:call(P, 2, {erlang, node, []})),
    pybridge:close(P).

from_a_coroutine() ->
    P = pybridge:open("calls_erlang:AsyncCallsErlang", [binary]),
    [?assertEqual({ok, node()}, pybridge:call(P, 6, {erlang, node, []})) || _ <- lists:seq(1, 10)],
    pybridge:close(P).

under_port_level_locking() ->
    P = pybridge:open("port_level:calls_erlang__CallsErlang", [binary]),
    [?assertEqual({ok, node()}, pybridge:call(P, 2, {erlang, node, []})) || _ <- lists:seq(1, 20)],
    ?assertEqual({ok, [c, b, a]}, pybridge:call(P, 5, {lists, reverse, [[a, b, c]]})),
    pybridge:close(P).

errors_and_timeouts() ->
    P = open(),
    ?assertEqual({erlang_error, throw, my_throw, true}, pybridge:call(P, 2, {?MODULE, raise_here, []})),
    ?assertEqual({erlang_error, error, undef, true}, pybridge:call(P, 2, {no_such_module, f, []})),
    T0 = now_ms(),
    ?assertEqual(timeout, pybridge:call(P, 2, {?MODULE, sleep_registered,
                                               [pb_pending_sleeper, 10000], 0.3})),
    ?assert(now_ms() - T0 < 3000),
    %% killed at its timeout, not left running
    ?assert(pybridge_test_lib:wait_until(fun() -> whereis(pb_pending_sleeper) =:= undefined end,
                                         1000)),
    ?assertEqual({ok, node()}, pybridge:call(P, 2, {erlang, node, []})),
    pybridge:close(P).

%% A function that needs the port whose callback called it: its request queues behind
%% that callback, which waits for the function: a deadlock by design, ended by the call's
%% timeout (pybridge.Timeout); then the queued request is served. Never a hang.
a_function_that_needs_the_port() ->
    P = open(),
    T0 = now_ms(),
    ?assertEqual(timeout, pybridge:call(P, 2, {?MODULE, control_port, [P], 0.5})),
    ?assert(now_ms() - T0 < 3000),
    T1 = now_ms(),
    ?assertEqual(timeout, pybridge:call(P, 2, {?MODULE, call_port, [P], 0.5})),
    ?assert(now_ms() - T1 < 3000),
    ?assertEqual({ok, node()}, pybridge:call(P, 2, {erlang, node, []})),
    pybridge:close(P).

%% Other processes' requests while one is pending: served after it, in order, wrapped or
%% raw, as a C driver's port serves one control at a time.
other_callers_queue_in_order() ->
    P = open(),
    Self = self(),
    spawn_link(fun() -> Self ! {first, pybridge:call(P, 2, {timer, sleep, [1000]})} end),
    until_pending(P),
    T0 = now_ms(),
    ?assertEqual(ok, pybridge:call(P, 1, {erlang, node, []})),
    ?assert(now_ms() - T0 >= 300),              % served after the first's sleep
    ?assertEqual({first, {ok, ok}}, receive {first, _} = M -> M after 5000 -> none end),
    %% a raw port_call holds its scheduler while it waits: the callback before it sleeps in
    %% Python rather than call Erlang (which that held scheduler could hold up)
    spawn_link(fun() -> Self ! {second, pybridge:call(P, 7, 1000)} end),
    until_pending(P),
    T1 = now_ms(),
    ?assertEqual(ok, erlang:port_call(P, 1, {erlang, node, []})),
    ?assert(now_ms() - T1 >= 300),
    ?assertEqual({second, ok}, receive {second, _} = M2 -> M2 after 5000 -> none end),
    ?assertEqual(none, no_replies()),
    pybridge:close(P).

%% Past the port's timeout the caller gets {pybridge, timeout}; the answer that comes later
%% is dropped (counted as late), never delivered as a stray message.
a_late_answer_is_dropped() ->
    P = pybridge:open("calls_erlang:CallsErlang", [binary, {timeout, 200}]),
    #{late_answers := Late0} = pybridge:info(P),
    T0 = now_ms(),
    ?assertError({pybridge, timeout}, pybridge:call(P, 2, {timer, sleep, [600]})),
    ?assert(now_ms() - T0 < 2000),
    ?assertMatch(#{late_answers := L, pending := 0} when L =:= Late0 + 1, pybridge:info(P)),
    timer:sleep(600),
    ?assertEqual(none, no_replies()),
    ?assertEqual({ok, node()}, pybridge:call(P, 2, {erlang, node, []})),
    pybridge:close(P).

%% The caller dies while Python works: the answer goes nowhere, the port goes on.
the_caller_s_death_leaves_the_port_serving() ->
    P = open(),
    Caller = spawn(fun() -> pybridge:call(P, 2, {timer, sleep, [300]}) end),
    until_pending(P),
    exit(Caller, kill),
    ?assertEqual({ok, node()}, pybridge:call(P, 2, {erlang, node, []})),
    ?assertMatch(#{pending := 0}, pybridge:info(P)),
    pybridge:close(P).

%% The port closes while Python works on a pending request: close returns, the caller gets
%% badarg (as port_call on a closed port) at once, the worker's other ports go on.
closing_the_port_is_badarg() ->
    P = open(),
    Other = open(),
    Self = self(),
    spawn(fun() -> Self ! {caller, catch pybridge:call(P, 2, {timer, sleep, [1000]})} end),
    until_pending(P),
    true = pybridge:close(P),
    ?assertMatch({caller, {'EXIT', {badarg, _}}}, receive {caller, _} = M -> M after 500 -> none end),
    ?assertEqual({ok, node()}, pybridge:call(Other, 2, {erlang, node, []})),
    pybridge:close(Other).

%% The worker dies (SIGKILL) under a pending request: {pybridge, worker_down}, at once.
the_worker_s_death_is_worker_down() ->
    Trap = process_flag(trap_exit, true),       % the port, linked to its owner, exits too
    P = open(),
    #{os_pid := OsPid} = pybridge:info(P),
    Self = self(),
    spawn(fun() -> Self ! {caller, catch pybridge:call(P, 2, {timer, sleep, [3000]})} end),
    until_pending(P),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    ?assertMatch({caller, {'EXIT', {{pybridge, worker_down}, _}}},
                 receive {caller, _} = M -> M after 2000 -> none end),
    receive {'EXIT', P, _} -> ok after 2000 -> ok end,
    process_flag(trap_exit, Trap).

%% Raw erlang:port_call (never wrapped) holds its scheduler as a C driver's does: a call
%% to Erlang inside it answers when the node can run it meanwhile, else it ends in the
%% timeout; never a hang.
raw_port_call_keeps_its_way() ->
    P = open(),
    T0 = now_ms(),
    Outcome = erlang:port_call(P, 2, {erlang, node, [], 0.5}),
    ?assert(Outcome =:= timeout orelse Outcome =:= {ok, node()}),
    ?assert(now_ms() - T0 < 3000),
    pybridge:close(P).
