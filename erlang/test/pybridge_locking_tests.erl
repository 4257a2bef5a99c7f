%% Port-level and driver-level locking (issue 12): under ERL_DRV_FLAG_USE_PORT_LOCKING a
%% port's blocked callback holds up that port only; without it the worker's callbacks run
%% in turn. Every exception is its callback's (BaseException too), self.port is safe from
%% any thread, a timed-out control's callback sees pybridge.Timeout, order per port holds,
%% and a protocol error during a control is reported as one.
%%
%% A scheduler blocked in a control delays ERTS timers on every scheduler: the side that
%% acts meanwhile runs on another scheduler and spins on erlang:monotonic_time/1.
-module(pybridge_locking_tests).
-include_lib("eunit/include/eunit.hrl").

locking_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 30, fun driver_level_ports_wait_in_turn/0},
      {timeout, 30, fun port_level_ports_run_concurrently/0},
      {timeout, 60, fun base_exceptions_are_the_callbacks/0},
      {timeout, 60, fun threads_hammering_output_never_interleave/0},
      {timeout, 30, fun a_timed_out_control_sees_timeout/0},
      {timeout, 60, fun order_per_port_holds_under_port_locking/0},
      {timeout, 30, fun a_protocol_error_in_control_is_named/0}]}.

now_ms() -> erlang:monotonic_time(millisecond).

%% Port A's control callback blocks BlockMs in Python, while B is asked over and over from
%% scheduler 2 for most of that time. A's caller (on scheduler 1) stops waiting after
%% 200 ms ({pybridge, timeout}; its callback goes on): a control blocks its scheduler as a
%% C driver's does, and ERTS holds up the ports whose tasks sit on a blocked scheduler's run
%% queue whatever the worker does, which is not what is measured here. Returns B's
%% latencies (ms) and A's answer once its callback has ended.
blocked_and_other(Class, BlockMs) ->
    Test = self(),
    spawn_opt(fun() -> Test ! {result, measure("sleeps_in_control:" ++ Class, BlockMs)} end,
              [{scheduler, 2}, link]),
    receive {result, R} -> R end.

measure(Spec, BlockMs) ->
    Me = self(),
    B = pybridge:open(Spec, [binary]),
    A = pybridge:open(Spec, [binary, {timeout, 200}]),
    T0 = now_ms(),
    spawn_opt(fun() -> Me ! {a, catch pybridge:control(A, 1, integer_to_list(BlockMs))} end,
              [{scheduler, 1}, link]),
    {'EXIT', {{pybridge, timeout}, _}} = receive {a, R} -> R end,
    Lat = ask(B, T0 + BlockMs - 500, []),
    spin(T0 + BlockMs + 200),               % A's callback has ended: A answers again
    Answer = pybridge:control(A, 0, <<"y">>),
    port_close(A),
    port_close(B),
    {Lat, Answer}.

%% controls on B until Until: no timers (a blocked scheduler delays them)
ask(B, Until, Acc) ->
    case now_ms() < Until of
        true ->
            T0 = now_ms(),
            "x" = pybridge:control(B, 0, <<"x">>),
            ask(B, Until, [now_ms() - T0 | Acc]);
        false ->
            lists:reverse(Acc)
    end.

spin(Until) ->
    case now_ms() < Until of
        true -> spin(Until);
        false -> ok
    end.

port_level_ports_run_concurrently() ->
    {Lat, Answer} = blocked_and_other("PortLevel", 3000),
    ?assertEqual("y", Answer),
    ?assert(length(Lat) > 10),
    ?assert(lists:max(Lat) < 100).

driver_level_ports_wait_in_turn() ->
    {[First | _], Answer} = blocked_and_other("DriverLevel", 3000),
    ?assertEqual("y", Answer),
    %% documented: the worker's callbacks run one at a time, B's waits for A's
    ?assert(First > 1500).

base_exceptions_are_the_callbacks() ->
    ok = logger:add_handler(pb_lock_capture, pybridge_log_capture,
                            #{config => #{to => self()}, filter_default => log}),
    try [base_exceptions(C) || C <- ["DriverLevel", "PortLevel"]]
    after logger:remove_handler(pb_lock_capture)
    end.

base_exceptions(Class) ->
    Spec = "raises_base_exceptions:" ++ Class,
    P = pybridge:open(Spec, "exit", [binary]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    Kinds = [{<<"exit">>, 'builtins.SystemExit', "SystemExit"},
             {<<"interrupt">>, 'builtins.KeyboardInterrupt', "KeyboardInterrupt"},
             {<<"bare">>, 'raises_base_exceptions.Bare', "Bare"},
             {<<"timeout">>, 'pybridge.Timeout', "pybridge.Timeout"}],
    [begin
         ?assertError({python, Name, _, _}, pybridge:control(P, 0, What)),
         ?assertError({python, Name, _, _}, pybridge:call(P, 0, What)),
         true = pybridge:command(P, What),
         logged(Short, "output")
     end || {What, Name, Short} <- Kinds],
    ?assertEqual("ok", pybridge:control(P, 0, <<"fine">>)),
    true = pybridge:command(P, <<"echo">>),
    receive {P, {data, <<"echo">>}} -> ok end,
    port_close(P),                          % stop raises SystemExit
    logged("SystemExit", "stop"),
    Q = pybridge:open(Spec, "", [binary]),
    ?assertEqual({os_pid, OsPid}, erlang:port_info(Q, os_pid)),   % the same worker
    ?assertEqual("ok", pybridge:control(Q, 0, <<"fine">>)),
    port_close(Q).

%% a log event naming the exception and the callback, with a traceback
logged(Exc, Callback) ->
    receive
        {logged, error, Text, _} ->
            case string:find(Text, Exc) =/= nomatch andalso
                 string:find(Text, "." ++ Callback) =/= nomatch of
                true -> ?assertNotEqual(nomatch, string:find(Text, "Traceback"));
                false -> logged(Exc, Callback)
            end
    after 5000 -> error({not_logged, Exc, Callback})
    end.

threads_hammering_output_never_interleave() ->
    [hammer("outputs_from_threads:" ++ C) || C <- ["DriverLevel", "PortLevel"]].

hammer(Spec) ->
    K = 4, N = 5000,
    P = pybridge:open(Spec, [binary]),
    "ok" = pybridge:control(P, 1, io_lib:format("~b ~b", [K, N])),
    ["ok" = pybridge:control(P, 2, <<>>) || _ <- lists:seq(1, 200)],
    Got = [receive {P, {data, D}} -> D after 10000 -> error(missing) end
           || _ <- lists:seq(1, K * N)],
    ByThread = lists:foldl(fun(D, Acc) ->
                                   [T, I] = binary:split(D, <<":">>),
                                   maps:update_with(T, fun(L) -> [binary_to_integer(I) | L] end,
                                                    [binary_to_integer(I)], Acc)
                           end, #{}, Got),
    ?assertEqual(K, map_size(ByThread)),
    [?assertEqual(lists:seq(0, N - 1), lists:reverse(L)) || L <- maps:values(ByThread)],
    ?assertEqual("ok", pybridge:control(P, 2, <<>>)),        % no protocol error: alive
    port_close(P).

a_timed_out_control_sees_timeout() ->
    [begin
         P = pybridge:open("notices_timeout:" ++ C, [binary, {timeout, 300}]),
         ?assertError({pybridge, timeout}, pybridge:control(P, 1, <<"3000">>)),
         ?assertEqual("yes", pybridge:control(P, 2, <<>>)),
         port_close(P)
     end || C <- ["DriverLevel", "PortLevel"]].

order_per_port_holds_under_port_locking() ->
    Ps = [pybridge:open("keeps_port_order:KeepsPortOrder", [binary]) || _ <- lists:seq(1, 4)],
    N = 3000,
    [begin
         [begin
              true = pybridge:command(P, integer_to_binary(I)),
              I rem 100 =:= 0 andalso
                  ?assertEqual(integer_to_list(I), pybridge:control(P, 0, <<>>))
          end || P <- Ps]
     end || I <- lists:seq(1, N)],
    [?assertEqual([integer_to_binary(I) || I <- lists:seq(1, N)],
                  [receive {P, {data, D}} -> D after 10000 -> error(missing) end
                   || _ <- lists:seq(1, N)]) || P <- Ps],
    [port_close(P) || P <- Ps].

a_protocol_error_in_control_is_named() ->
    process_flag(trap_exit, true),
    P = pybridge:open("breaks_protocol_in_control:BreaksProtocolInControl", [binary]),
    ?assertError({pybridge, protocol_error}, pybridge:control(P, 0, <<>>)),
    receive {'EXIT', P, Reason} -> ?assertEqual(pybridge_protocol_error, Reason) end,
    process_flag(trap_exit, false).
