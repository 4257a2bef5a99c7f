%% Hung callbacks (issue 12): `while True: pass` in control, with callback_limit 500 ms.
%% Port-level locking: that port exits {pybridge, hung}, the worker's other ports go on.
%% Driver-level locking: the worker is replaced, its ports exit {pybridge, worker_hung}.
%% Either way the control returns within the limit plus a second, and later opens work.
-module(pybridge_hung_tests).
-include_lib("eunit/include/eunit.hrl").

-define(LIMIT, 500).

hung_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 30, fun a_spinning_port_exits_hung/0},
      {timeout, 30, fun a_spinning_worker_is_replaced/0},
      {timeout, 30, fun c_code_holding_the_gil_is_bounded_by_the_node/0}]}.

now_ms() -> erlang:monotonic_time(millisecond).

a_spinning_port_exits_hung() ->
    process_flag(trap_exit, true),
    A = pybridge:open("spins_in_control:PortLevel", [binary]),
    B = pybridge:open("sleeps_in_control:PortLevel", [binary]),
    {os_pid, OsPid} = erlang:port_info(A, os_pid),
    T0 = now_ms(),
    ?assertError({pybridge, hung}, pybridge:control(A, 1, <<>>)),
    ?assert(now_ms() - T0 < ?LIMIT + 1000),
    receive {'EXIT', A, Reason} -> ?assertEqual({pybridge, hung}, Reason) end,
    ?assertEqual("x", pybridge:control(B, 0, <<"x">>)),
    C = pybridge:open("spins_in_control:PortLevel", [binary]),
    ?assertEqual({os_pid, OsPid}, erlang:port_info(C, os_pid)),     % the same worker
    ?assertEqual("y", pybridge:control(C, 0, <<"y">>)),
    [port_close(P) || P <- [B, C]],
    process_flag(trap_exit, false).

a_spinning_worker_is_replaced() ->
    process_flag(trap_exit, true),
    A = pybridge:open("spins_in_control:DriverLevel", [binary]),
    B = pybridge:open("sleeps_in_control:DriverLevel", [binary]),
    {os_pid, OsPid} = erlang:port_info(A, os_pid),
    T0 = now_ms(),
    %% the control's own answer: the worker's end (its ports' exit reason says why)
    ?assertMatch({'EXIT', {{pybridge, R}, _}} when R =:= worker_down; R =:= worker_hung,
                 catch pybridge:control(A, 1, <<>>)),
    ?assert(now_ms() - T0 < ?LIMIT + 1000),
    [receive {'EXIT', P, Reason} -> ?assertEqual({pybridge, worker_hung}, Reason) end
     || P <- [A, B]],
    C = pybridge:open("sleeps_in_control:DriverLevel", [binary]),
    ?assert(now_ms() - T0 < ?LIMIT + 1000 + 5000),    % a new worker's start included
    ?assertNotEqual({os_pid, OsPid}, erlang:port_info(C, os_pid)),
    ?assertEqual("y", pybridge:control(C, 0, <<"y">>)),
    port_close(C),
    process_flag(trap_exit, false).

%% The worker's watchdog is a Python thread: C code that keeps the GIL stops it too. The
%% driver's own wait bounds it: the limit plus its grace, then the worker is killed.
c_code_holding_the_gil_is_bounded_by_the_node() ->
    process_flag(trap_exit, true),
    A = pybridge:open("holds_the_gil:HoldsTheGil", [binary]),
    {os_pid, OsPid} = erlang:port_info(A, os_pid),
    T0 = now_ms(),
    ?assertError({pybridge, worker_hung}, pybridge:control(A, 1, <<>>)),
    ?assert(now_ms() - T0 < ?LIMIT + 1000),
    receive {'EXIT', A, Reason} -> ?assertEqual({pybridge, worker_hung}, Reason) end,
    C = pybridge:open("holds_the_gil:HoldsTheGil", [binary]),
    ?assertNotEqual({os_pid, OsPid}, erlang:port_info(C, os_pid)),
    ?assertEqual("y", pybridge:control(C, 0, <<"y">>)),
    port_close(C),
    process_flag(trap_exit, false).
