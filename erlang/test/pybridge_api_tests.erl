%% The erl_driver surface from Python (issue 3): what Erlang observes for each call,
%% one test driver (tests/drivers/) per behaviour.
-module(pybridge_api_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

api_test_() ->
    {setup,
     fun pybridge_test_lib:start/0,
     fun pybridge_test_lib:stop/1,
     [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()] ++
     %% the same again under port-level locking (issue 12): see open/1
     [{timeout, 60, {atom_to_list(T) ++ " (port-level locking)",
                     fun() -> put(port_level, true), ?MODULE:T() end}} || T <- tests()]}.

tests() ->
    [output_forms_binary, output_forms_list, output_term_examples, output_term_specs,
     send_term_targets,
     timer_fires, timer_replaced, timer_cancelled_never_fires, read_timer, timer_set_in_start,
     timer_without_timeout_callback, failure_code, failure_atom, failure_posix,
     failure_eof_with_eof_option, failure_eof_without, busy_port_suspends_and_nosuspend,
     queue_is_the_erts_queue, close_waits_for_flush, kill_skips_flush,
     monitor_process_exit, demonitor, emulator_system_info, emulator_time, emulator_env,
     os_pid_setting, async_completion_order, async_same_key_in_order,
     async_job_outliving_port_is_logged, select_serves_a_socket, strict_output_waits,
     relaxed_output_does_not_wait, strict_output_is_bounded,
     busy_msgq_limits, create_port, asks_inside_output_keep_order, info_and_stats].

open(Spec) -> open(Spec, []).
open(Spec, Opts) -> pybridge:open(locking(Spec), [binary | Opts]).

%% "mod:Class", or under port-level locking the same class with the flag added
%% (tests/drivers/port_level.py)
locking(Spec) ->
    case get(port_level) of
        true -> [Mod, Class] = string:split(Spec, ":"), "port_level:" ++ Mod ++ "__" ++ Class;
        _ -> Spec
    end.

msg(Port) -> receive {Port, M} -> M after 2000 -> timeout end.

%% ---------------------------------------------------------------------------

output_forms_binary() ->
    P = open("output_forms:OutputForms"),
    [] = erlang:port_control(P, 1, <<>>),
    ?assertEqual({data, [1, 2 | <<"tail">>]}, msg(P)),
    [] = erlang:port_control(P, 2, <<>>),
    ?assertEqual({data, [1, 2 | <<"3456">>]}, msg(P)),
    [] = erlang:port_control(P, 3, <<>>),
    ?assertEqual({data, [1, 2, <<"B1">>, <<"B2">> | <<"B3">>]}, msg(P)),
    %% skip 9: all of "skipped" (7) and 2 bytes of "kept"
    [] = erlang:port_control(P, 4, <<>>),
    ?assertEqual({data, <<"pt">>}, msg(P)),
    port_close(P).

output_forms_list() ->
    P = pybridge:open("output_forms:OutputForms", []),
    [] = erlang:port_control(P, 1, <<>>),
    ?assertEqual({data, [1, 2 | "tail"]}, msg(P)),
    [] = erlang:port_control(P, 2, <<>>),
    ?assertEqual({data, [1, 2 | "3456"]}, msg(P)),
    port_close(P).

output_term_examples() ->
    P = open("term_messages:TermMessages"),
    [] = erlang:port_control(P, 1, <<>>),
    ?assertEqual({tcp, P, [100 | <<"Binary">>]}, receive M1 -> M1 after 2000 -> timeout end),
    [] = erlang:port_control(P, 2, <<>>),
    ?assertEqual([x, "abc", y], receive M2 -> M2 after 2000 -> timeout end),
    [] = erlang:port_control(P, 3, <<>>),
    ?assertEqual("abc123", receive M3 -> M3 after 2000 -> timeout end),
    [] = erlang:port_control(P, 4, <<>>),
    ?assertEqual({my_tag, {17, 4711}}, receive M4 -> M4 after 2000 -> timeout end),
    [] = erlang:port_control(P, 5, <<>>),
    ?assertEqual(#{key1 => 100, key2 => {200, 300}}, receive M5 -> M5 after 2000 -> timeout end),
    [] = erlang:port_control(P, 7, <<>>),
    ?assertEqual({1, [a, {<<"x">>, [self()]}], #{p => [P]}, 2.5},
                 receive M7 -> M7 after 2000 -> timeout end),
    port_close(P).

output_term_specs() ->
    P = open("term_specs:TermSpecs"),
    Get = fun(N) -> [] = erlang:port_control(P, N, <<>>), receive M -> M after 2000 -> timeout end end,
    ?assertEqual({tcp, P, [100 | <<"Binary">>]}, Get(1)),
    ?assertEqual([x, "abc", y], Get(2)),
    ?assertEqual("abc123", Get(3)),
    ?assertEqual({my_tag, {17, 4711}}, Get(4)),
    ?assertEqual(#{key1 => 100, key2 => {200, 300}}, Get(5)),
    ?assertEqual({self(), 1 bsl 63, 1.5, <<"buf">>}, Get(6)),
    %% a malformed spec is a Python exception in the callback, never a bad term
    ?assertError({python, 'pybridge.spec.SpecError', _, _}, pybridge:control(P, 9, <<>>)),
    ?assertEqual(none, receive M -> M after 100 -> none end),
    port_close(P).

send_term_targets() ->
    Self = self(),
    P = open("term_messages:TermMessages"),
    %% to the caller (a pid the port named: sent straight, as ERL_DRV_PID)
    Helper = spawn_link(fun() ->
        [] = erlang:port_control(P, 6, <<>>),
        receive M -> Self ! {helper_got, M} after 2000 -> Self ! {helper_got, timeout} end
    end),
    ?assertEqual({helper_got, {to_caller, Helper, Self}},
                 receive {helper_got, _} = H -> H after 3000 -> timeout end),
    %% to a pid that only came inside a term
    Other = spawn_link(fun() ->
        receive M -> Self ! {other_got, M} after 2000 -> Self ! {other_got, timeout} end
    end),
    ?assertEqual(sent, erlang:port_call(P, 0, Other)),
    ?assertEqual({other_got, {to_pid_in_term, P}},
                 receive {other_got, _} = O -> O after 3000 -> timeout end),
    port_close(P).

timer_fires() ->
    P = open("timers:Timers"),
    T0 = erlang:monotonic_time(millisecond),
    [] = erlang:port_control(P, 1, <<"100">>),
    ?assertEqual({timeout, 1}, receive {timeout, _} = T -> T after 2000 -> none end),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ?assert(Elapsed >= 100),
    port_close(P).

timer_replaced() ->
    P = open("timers:Timers"),
    [] = erlang:port_control(P, 1, <<"100">>),
    [] = erlang:port_control(P, 1, <<"300">>),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({timeout, 1}, receive {timeout, _} = T -> T after 2000 -> none end),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 290),
    ?assertEqual(none, receive {timeout, _} = T2 -> T2 after 400 -> none end),
    port_close(P).

timer_cancelled_never_fires() ->
    %% cancel right around the deadline, many times: a timeout that fired before the
    %% cancel may be seen, one after cancel_timer returned never (the driver reports it)
    flush_mailbox(),
    P = open("timers:Timers"),
    [begin
         [] = erlang:port_control(P, 1, <<"1">>),
         timer:sleep(I rem 3),
         [] = erlang:port_control(P, 2, <<>>)
     end || I <- lists:seq(1, 300)],
    [] = erlang:port_control(P, 1, <<"300">>),
    [] = erlang:port_control(P, 2, <<>>),
    timer:sleep(500),
    ?assertEqual(none, receive {timeout_after_cancel, _} = V -> V after 0 -> none end),
    port_close(P),
    flush_mailbox().

flush_mailbox() ->
    receive _ -> flush_mailbox() after 0 -> ok end.

read_timer() ->
    P = open("timers:Timers"),
    ?assertEqual("0", erlang:port_control(P, 3, <<>>)),
    [] = erlang:port_control(P, 1, <<"10000">>),
    Left = list_to_integer(erlang:port_control(P, 3, <<>>)),
    ?assert(Left > 9000 andalso Left =< 10000),
    [] = erlang:port_control(P, 2, <<>>),
    ?assertEqual("0", erlang:port_control(P, 3, <<>>)),
    port_close(P).

timer_set_in_start() ->
    flush_mailbox(),
    P = pybridge:open("timers:Timers", "50", [binary]),
    ?assertEqual({timeout, 1}, receive {timeout, _} = T -> T after 2000 -> none end),
    port_close(P).

timer_without_timeout_callback() ->
    P = open("timer_without_timeout:TimerWithoutTimeout"),
    <<"set">> = iolist_to_binary(erlang:port_control(P, 0, <<"20">>)),
    timer:sleep(100),
    ?assertEqual(<<"set">>, iolist_to_binary(erlang:port_control(P, 0, <<"20">>))),
    port_close(P).

exit_reason(P, Cmd) ->
    process_flag(trap_exit, true),
    true = erlang:port_command(P, Cmd),
    R = receive {'EXIT', P, Reason} -> Reason after 2000 -> timeout end,
    process_flag(trap_exit, false),
    R.

failure_code() ->
    ?assertEqual(42, exit_reason(open("failures:Failures"), <<"code 42">>)).

failure_atom() ->
    ?assertEqual(my_reason, exit_reason(open("failures:Failures"), <<"atom my_reason">>)).

failure_posix() ->
    ?assertEqual(eagain, exit_reason(open("failures:Failures"), <<"posix">>)).

failure_eof_with_eof_option() ->
    P = open("failures:Failures", [eof]),
    true = erlang:port_command(P, <<"eof">>),
    ?assertEqual(eof, msg(P)),
    port_close(P).

failure_eof_without() ->
    ?assertEqual(normal, exit_reason(open("failures:Failures"), <<"eof">>)).

busy_port_suspends_and_nosuspend() ->
    P = open("busy:Busy"),
    true = erlang:port_command(P, <<"busy">>),
    %% a control round trip: the busy request has been carried out when it returns
    [] = erlang:port_control(P, 0, <<>>),
    true = erlang:port_command(P, <<"busy">>),
    timer:sleep(50),
    ?assertEqual(false, erlang:port_command(P, <<"dropped?">>, [nosuspend])),
    Self = self(),
    Sender = spawn_link(fun() -> true = erlang:port_command(P, <<"after">>), Self ! sent end),
    timer:sleep(100),
    ?assertEqual({status, suspended}, erlang:process_info(Sender, status)),
    [] = erlang:port_control(P, 0, <<>>),
    ?assertEqual(sent, receive sent -> sent after 2000 -> timeout end),
    ?assertEqual({data, <<"after">>}, msg(P)),
    port_close(P).

queue_is_the_erts_queue() ->
    P = open("queue_flush:QueueFlush"),
    true = erlang:port_command(P, <<"abc">>),
    true = erlang:port_command(P, <<"def">>),
    ?assertEqual("0abcdef", erlang:port_control(P, 1, <<"0">>)),
    ?assertEqual({queue_size, 7}, erlang:port_info(P, queue_size)),
    ?assertEqual(7, erlang:port_call(P, 0, x)),
    ?assertEqual("3", erlang:port_control(P, 2, <<"4">>)),
    ?assertEqual({queue_size, 3}, erlang:port_info(P, queue_size)),
    ?assertEqual("def", erlang:port_control(P, 0, <<>>)),
    ?assertEqual("0", erlang:port_control(P, 2, <<"3">>)),
    port_close(P).

drain_file() ->
    F = filename:join(filename:basedir(user_cache, "pybridge_test"),
                      "drain_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(F),
    F.

close_waits_for_flush() ->
    File = drain_file(),
    P = pybridge:open("queue_flush:QueueFlush", File, [binary]),
    [true = erlang:port_command(P, B) || B <- [<<"one">>, <<"two">>, <<"three">>]],
    ?assertEqual("onetwothree", erlang:port_control(P, 3, <<>>)),
    T0 = erlang:monotonic_time(millisecond),
    P ! {self(), close},
    %% flush drains one piece per 50 ms timeout; ERTS closes the port only when empty
    ?assertEqual(closed, receive {P, closed} -> closed after 3000 -> timeout end),
    ?assert(erlang:monotonic_time(millisecond) - T0 >= 140),
    ?assertEqual({ok, <<"onetwothree">>}, file:read_file(File)),
    file:delete(File).

kill_skips_flush() ->
    process_flag(trap_exit, true),
    File = drain_file(),
    P = pybridge:open("queue_flush:QueueFlush", File, [binary]),
    true = erlang:port_command(P, <<"queued">>),
    6 = erlang:port_call(P, 0, x),
    exit(P, kill),
    ?assertEqual(killed, receive {'EXIT', P, R} -> R after 2000 -> timeout end),
    timer:sleep(200),
    ?assertEqual({error, enoent}, file:read_file(File)),
    process_flag(trap_exit, false).

monitored(Port, Name) ->
    Self = self(),
    Pid = spawn(fun() ->
        Self ! {self(), pybridge:control(Port, 1, Name)},
        receive stop -> ok end
    end),
    receive {Pid, Reply} -> {Pid, Reply} after 2000 -> error(no_reply) end.

monitor_process_exit() ->
    P = open("monitors:Monitors"),
    {Pid, "monitoring"} = monitored(P, <<"a">>),
    ?assertEqual({monitors, [{process, Pid}]}, erlang:port_info(P, monitors)),
    {monitored_by, By} = erlang:process_info(Pid, monitored_by),
    ?assert(lists:member(P, By)),
    exit(Pid, kill),
    ?assertEqual({process_exit, <<"a">>, Pid},
                 receive {process_exit, _, _} = E -> E after 2000 -> timeout end),
    ?assertEqual({monitors, []}, erlang:port_info(P, monitors)),
    port_close(P).

demonitor() ->
    P = open("monitors:Monitors"),
    {Pid, "monitoring"} = monitored(P, <<"b">>),
    ?assertEqual("demonitored", erlang:port_control(P, 2, <<"b">>)),
    ?assertEqual({monitors, []}, erlang:port_info(P, monitors)),
    exit(Pid, kill),
    ?assertEqual(none, receive {process_exit, _, _} = E -> E after 300 -> none end),
    port_close(P).

emulator_system_info() ->
    P = open("emulator_info:EmulatorInfo"),
    Info = pybridge:call(P, 1, x),
    ?assertEqual(list_to_binary(erlang:system_info(otp_release)), maps:get(<<"otp_release">>, Info)),
    ?assertEqual(list_to_binary(erlang:system_info(version)), maps:get(<<"erts_version">>, Info)),
    ?assertEqual(erlang:system_info(schedulers), maps:get(<<"scheduler_threads">>, Info)),
    port_close(P).

emulator_time() ->
    P = open("emulator_info:EmulatorInfo"),
    T0 = erlang:monotonic_time(millisecond),
    {Mono, Offset} = pybridge:call(P, 2, x),
    T1 = erlang:monotonic_time(millisecond),
    ?assert(T0 =< Mono andalso Mono =< T1),
    ?assertEqual(erlang:time_offset(microsecond), Offset),
    port_close(P).

emulator_env() ->
    P = open("emulator_info:EmulatorInfo"),
    Key = "PYBRIDGE_TEST_" ++ integer_to_list(erlang:unique_integer([positive])),
    ?assertEqual(undefined, pybridge:call(P, 4, list_to_binary(Key))),
    ?assertEqual(<<"from python">>, pybridge:call(P, 3, {list_to_binary(Key), <<"from python">>})),
    ?assertEqual("from python", os:getenv(Key)),
    os:putenv(Key, "from erlang"),
    ?assertEqual(<<"from erlang">>, pybridge:call(P, 4, list_to_binary(Key))),
    %% any size: OTP's env test reads values far past a small first buffer
    [begin
         Long = lists:duplicate(N, $v),
         os:putenv(Key, Long),
         ?assertEqual(list_to_binary(Long), pybridge:call(P, 4, list_to_binary(Key)))
     end || N <- [255, 256, 257, 4096, 100000]],
    os:unsetenv(Key),
    port_close(P).

os_pid_setting() ->
    P = open("emulator_info:EmulatorInfo"),
    {os_pid, Worker} = erlang:port_info(P, os_pid),
    ?assert(is_integer(Worker)),
    true = pybridge:call(P, 5, 4242),
    ?assertEqual({os_pid, 4242}, erlang:port_info(P, os_pid)),
    port_close(P).

done_order(N) ->
    [receive {done, C} -> C after 3000 -> timeout end || _ <- lists:seq(1, N)].

async_completion_order() ->
    P = open("async_jobs:AsyncJobs"),
    [] = erlang:port_control(P, 1, <<"300">>),
    [] = erlang:port_control(P, 2, <<"50">>),
    [] = erlang:port_control(P, 3, <<"150">>),
    %% no key: the jobs run side by side and report in the order they finish
    ?assertEqual([2, 3, 1], done_order(3)),
    port_close(P).

async_same_key_in_order() ->
    P = open("async_jobs:AsyncJobs"),
    [] = erlang:port_control(P, 1, <<"300 k">>),
    [] = erlang:port_control(P, 2, <<"50 k">>),
    [] = erlang:port_control(P, 3, <<"10 k">>),
    ?assertEqual([1, 2, 3], done_order(3)),
    port_close(P).

async_job_outliving_port_is_logged() ->
    ok = logger:add_handler(pb_async_capture, pybridge_log_capture,
                            #{config => #{to => self()}, filter_default => log}),
    try
        P = open("async_jobs:AsyncJobs"),
        [] = erlang:port_control(P, 7, <<"200">>),
        port_close(P),
        {Level, Msg} = receive {logged, L, M, _} -> {L, M} after 3000 -> timeout end,
        ?assertEqual(warning, Level),
        ?assertNotEqual(nomatch, string:find(Msg, "closed before its async_ job finished"))
    after
        logger:remove_handler(pb_async_capture)
    end.

select_serves_a_socket() ->
    P = open("socket_echo:SocketEcho"),
    TcpPort = pybridge:call(P, 0, port),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, TcpPort, [binary, {active, false}]),
    ?assertEqual(accepted, receive accepted -> accepted after 2000 -> timeout end),
    ok = gen_tcp:send(S, <<"ping">>),
    ?assertEqual({ok, <<"ping">>}, gen_tcp:recv(S, 4, 2000)),
    ?assertEqual({echoed, <<"ping">>}, receive {echoed, _} = E -> E after 2000 -> timeout end),
    ok = gen_tcp:close(S),
    ?assertEqual(closed, receive closed -> closed after 2000 -> timeout end),
    port_close(P).

command_ms(P, Data) ->
    T0 = erlang:monotonic_time(millisecond),
    true = erlang:port_command(P, Data),
    erlang:monotonic_time(millisecond) - T0.

strict_output_waits() ->
    P = open("strict_output:Strict"),
    ?assert(command_ms(P, <<"300">>) >= 290),
    %% when port_command returned, the callback had finished: its output is there
    ?assertEqual({data, <<"done">>}, receive {P, M} -> M after 0 -> none end),
    port_close(P).

relaxed_output_does_not_wait() ->
    P = open("strict_output:Relaxed"),
    ?assert(command_ms(P, <<"300">>) < 250),
    ?assertEqual({data, <<"done">>}, msg(P)),
    port_close(P).

strict_output_is_bounded() ->
    P = open("strict_output:Strict", [{timeout, 200}]),
    Ms = command_ms(P, <<"1000">>),
    ?assert(Ms >= 190 andalso Ms < 900),
    %% the port is still usable; the late answer is discarded
    ?assertEqual({data, <<"done">>}, msg(P)),
    port_close(P).

busy_msgq_limits() ->
    P = open("emulator_info:EmulatorInfo"),
    ?assertEqual({4096, 65536}, pybridge:call(P, 6, {4096, 65536})),
    %% 0 leaves a limit as it is
    ?assertEqual({4096, 65536}, pybridge:call(P, 6, {0, 0})),
    port_close(P).

create_port() ->
    P = open("spawner:Spawner"),
    ?assertEqual("created", erlang:port_control(P, 1, <<>>)),
    Child = receive {created, C} -> C after 2000 -> timeout end,
    ?assert(is_port(Child)),
    ?assertNotEqual(P, Child),
    ?assertEqual({connected, self()}, erlang:port_info(Child, connected)),
    %% the owner is linked to it (seen from the owner: port_info(Child, links) says undefined)
    {links, Links} = erlang:process_info(self(), links),
    ?assert(lists:member(Child, Links)),
    %% a new instance of the class, whose start was not called
    ?assertEqual("not started", erlang:port_control(Child, 2, <<>>)),
    ?assertEqual("started", erlang:port_control(P, 2, <<>>)),
    true = erlang:port_command(Child, <<"child">>),
    ?assertEqual(<<"CHILD">>, receive {Child, {data, D}} -> iolist_to_binary(D) after 2000 -> timeout end),
    port_close(Child),
    ?assertEqual("started", erlang:port_control(P, 2, <<>>)),
    port_close(P).

asks_inside_output_keep_order() ->
    P = open("asks_in_output:AsksInOutput"),
    N = 3000,
    [true = erlang:port_command(P, integer_to_binary(I)) || I <- lists:seq(1, N)],
    Otp = list_to_binary(erlang:system_info(otp_release)),
    Got = [receive {P, {data, D}} -> D after 5000 -> timeout end || _ <- lists:seq(1, N)],
    ?assertEqual([<<(integer_to_binary(I))/binary, " ", Otp/binary>> || I <- lists:seq(1, N)], Got),
    port_close(P).

info_and_stats() ->
    P = open("upper:Upper"),
    [true = erlang:port_command(P, <<"abc">>) || _ <- lists:seq(1, 10)],
    [receive {P, {data, _}} -> ok end || _ <- lists:seq(1, 10)],
    [_ = erlang:port_control(P, 0, <<"x">>) || _ <- lists:seq(1, 20)],
    _ = pybridge:call(P, 0, x),
    I = pybridge:info(P),
    ?assertMatch(#{output := 10, control := 20, call := 1, timeout := 0, late_answers := 0,
                   driver_queue := 0, busy := 0, monitors := 0}, I),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    ?assertEqual(OsPid, maps:get(os_pid, I)),
    ?assert(maps:get(bytes_to_python, I) > 10 * 3 + 20 andalso maps:get(bytes_from_python, I) > 10 * 3),
    ?assert(maps:get(latency_p50_us, I) > 0),
    ?assert(maps:get(latency_p50_us, I) =< maps:get(latency_p99_us, I)),
    %% the manager counts a port once the worker's CTL_PORT_OPENED has reached it through
    %% the manager port, which may run after the port's first controls: wait for it
    Stats = fun() -> hd([W || W = #{os_pid := Pid} <- pybridge:stats(), Pid =:= OsPid]) end,
    ?assert(pybridge_test_lib:wait_until(fun() -> maps:get(ports, Stats()) >= 1 end, 2000)),
    ?assertMatch(#{worker := 1, rss_kib := R} when R > 0, Stats()),
    port_close(P).
