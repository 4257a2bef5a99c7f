%% Issue 2 semantics, each against a real node, the real driver and a real worker.
%% Test drivers live in tests/drivers/, one behaviour each.
-module(pybridge_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).


bridge_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()]}.

tests() ->
    [quick_start, plain_bifs, spawn_driver_open, port_info_and_connect, start_exception,
     open_errors, start_timeout, output_joined, outputv_pieces, command_then_control_order,
     both_directions_full, control_rules, call_rules, missing_callbacks, term_mapping, none_as_nil, caller_connected,
     control_timeout, call_timeout, exception_in_output_is_logged, stdout_and_stderr_are_logged,
     close_calls_stop,
     python_path_option, worker_down, pool_spreads_ports].


open(Spec) -> pybridge:open(Spec, [binary]).

flush_msgs() ->
    receive _ -> flush_msgs() after 0 -> ok end.

worker_os_pids() ->
    [pybridge_manager:os_pid(P) || P <- pybridge_sup:managers()].

%% ---------------------------------------------------------------------------

quick_start() ->
    Port = open("upper:Upper"),
    true = pybridge:command(Port, <<"hi">>),
    ?assertEqual(<<"HI">>, receive {Port, {data, D}} -> D after 2000 -> timeout end),
    ?assertEqual("ih", pybridge:control(Port, 1, <<"hi">>)),
    ?assertEqual({count, 1}, pybridge:call(Port, 2, anything)),
    ?assert(pybridge:close(Port)),
    ?assertEqual(undefined, erlang:port_info(Port)).

plain_bifs() ->
    Port = open("upper:Upper"),
    true = erlang:port_command(Port, "ab"),
    true = erlang:port_command(Port, [<<"c">>, $d], []),
    Port ! {self(), {command, <<"ef">>}},
    Got = [receive {Port, {data, D}} -> D after 2000 -> timeout end || _ <- [1, 2, 3]],
    ?assertEqual([<<"AB">>, <<"CD">>, <<"EF">>], Got),
    ?assertEqual("cba", erlang:port_control(Port, 0, "abc")),
    ?assertEqual({count, 3}, erlang:port_call(Port, 0, x)),
    Port ! {self(), close},
    ?assertEqual(closed, receive {Port, closed} -> closed after 2000 -> timeout end).

spawn_driver_open() ->
    Port = open_port({spawn_driver, "pybridge echo_term:EchoTerm some args"}, [binary]),
    ?assertEqual(<<"some args">>, erlang:port_call(Port, 1, x)),
    ?assert(port_close(Port)).

port_info_and_connect() ->
    Port = open("upper:Upper"),
    {name, Name} = erlang:port_info(Port, name),
    ?assertEqual("pybridge", hd(string:split(Name, " "))),
    ?assertEqual({connected, self()}, erlang:port_info(Port, connected)),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    ?assert(lists:member(OsPid, worker_os_pids())),
    Self = self(),
    Other = spawn_link(fun() -> receive {Port, {data, D}} -> Self ! {other_got, D} end end),
    true = erlang:port_connect(Port, Other),
    unlink(Port),
    ?assertEqual({connected, Other}, erlang:port_info(Port, connected)),
    true = erlang:port_command(Port, <<"to other">>),
    ?assertEqual(<<"TO OTHER">>, receive {other_got, D} -> D after 2000 -> timeout end),
    %% only the connected process may port_close; the test kills the port instead
    exit(Port, kill).

start_exception() ->
    ?assertError(badarg, open_port({spawn_driver, "pybridge start_fails:StartFails x"}, [])),
    try pybridge:open("start_fails:StartFails", "please", []) of
        P -> error({opened, P})
    catch error:{python, Class, Msg, Tb} ->
        ?assertEqual('builtins.ValueError', Class),
        ?assertEqual(<<"start refused: please">>, Msg),
        ?assertMatch({_, _}, binary:match(Tb, <<"Traceback">>))
    end,
    %% the worker survived: other ports open
    ?assert(pybridge:close(open("upper:Upper"))).

open_errors() ->
    ?assertError(badarg, pybridge:open("no colon here", [])),
    ?assertError(badarg, pybridge:open("mod:Class; rm -rf /", [])),
    ?assertError(badarg, pybridge:open(42, [])),
    ?assertError({python, 'builtins.ModuleNotFoundError', _, _},
                 pybridge:open("no_such_module:Driver", [])),
    ?assertError({python, 'builtins.TypeError', _, _},
                 pybridge:open("start_fails:NotADriver", [])),
    %% only modules from the configured python_path are imported at all
    ?assertError({python, 'builtins.ModuleNotFoundError', _, _}, pybridge:open("json:JSONDecoder", [])),
    ?assertError({python, 'builtins.ModuleNotFoundError', _, _}, pybridge:open("pybridge:Driver", [])),
    ?assertError({python, 'builtins.ModuleNotFoundError', _, _}, pybridge:open("this:X", [])),
    ?assertError(badarg, open_port({spawn_driver, "pybridge !!!"}, [])).

start_timeout() ->
    T0 = erlang:monotonic_time(millisecond),
    ?assertError({pybridge, timeout}, pybridge:open("start_slow:StartSlow", "1.5", [{timeout, 200}])),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
    %% the worker is busy in start for a while, then serves again
    ?assert(pybridge:close(open("upper:Upper"))).

output_joined() ->
    Port = open("output_joined:OutputJoined"),
    Big = binary:copy(<<"x">>, 200),
    true = erlang:port_command(Port, [<<"ab">>, Big, "cd"]),
    ?assertEqual([<<"ab", Big/binary, "cd">>], erlang:port_call(Port, 0, x)),
    port_close(Port).

outputv_pieces() ->
    Port = open("outputv_pieces:OutputvPieces"),
    A = binary:copy(<<"a">>, 1000),
    B = binary:copy(<<"b">>, 2000),
    true = erlang:port_command(Port, [A, B]),
    ?assertEqual([[1000, 2000]], erlang:port_call(Port, 0, x)),
    port_close(Port).

command_then_control_order() ->
    Port = open("counter:Counter"),
    N = 2000,
    [true = erlang:port_command(Port, integer_to_binary(I)) || I <- lists:seq(1, N)],
    %% control issued after the commands sees all of them, and every output of those
    %% commands is already in the mailbox, in order
    ?assertEqual(integer_to_list(N), erlang:port_control(Port, 0, <<>>)),
    Got = [receive {Port, {data, D}} -> binary_to_integer(D) after 0 -> missing end
           || _ <- lists:seq(1, N)],
    ?assertEqual(lists:seq(1, N), Got),
    port_close(Port).

both_directions_full() ->
    %% 64 MiB each way through 64 KiB-class socket buffers, then a control: neither side
    %% may block on a full socket while the other waits for it (the outputv deadlock)
    Port = open("big_echo:BigEcho"),
    Chunk = crypto_free_bytes(4 bsl 20),
    N = 16,
    [true = erlang:port_command(Port, [Chunk]) || _ <- lists:seq(1, N)],
    ?assertEqual(integer_to_list(N * byte_size(Chunk)), erlang:port_control(Port, 0, <<>>)),
    Got = iolist_to_binary(collect_data(Port, N * byte_size(Chunk))),
    ?assertEqual(binary:copy(Chunk, N), Got),
    port_close(Port).

crypto_free_bytes(N) ->
    rand:seed(exsss, {1, 2, 3}),
    << <<(rand:uniform(256) - 1)>> || _ <- lists:seq(1, N) >>.

collect_data(_Port, 0) -> [];
collect_data(Port, Left) ->
    receive {Port, {data, D}} -> [D | collect_data(Port, Left - byte_size(D))]
    after 5000 -> error({missing_bytes, Left})
    end.

control_rules() ->
    Port = open("control_rules:ControlRules"),
    ?assertEqual("data", erlang:port_control(Port, 9, <<"data">>)),
    ?assertEqual([], erlang:port_control(Port, 0, <<>>)),
    ?assertEqual([], pybridge:control(Port, 0, <<>>)),
    ?assertError(badarg, erlang:port_control(Port, 1, <<>>)),
    ?assertError(badarg, pybridge:control(Port, 1, <<>>)),
    ?assertError(badarg, erlang:port_control(Port, 2, <<>>)),
    ?assertError({python, 'builtins.RuntimeError', <<"control broke">>, _},
                 pybridge:control(Port, 2, <<>>)),
    Large = erlang:port_control(Port, 4, <<"1048576">>),
    ?assertEqual(1048576, length(Large)),
    ?assertEqual(lists:seq(0, 255), lists:sublist(Large, 256)),
    ?assertEqual(<<"bin">>, erlang:port_control(Port, 3, <<"bin">>)),
    ?assertEqual(<<"bin2">>, pybridge:control(Port, 9, [<<"bin">>, $2])),
    %% None is a NULL *rbuf: [] in binary mode too, as ERTS gives (OTP's queue_echo)
    ?assertEqual([], erlang:port_control(Port, 0, <<>>)),
    ?assertEqual([], pybridge:control(Port, 0, <<>>)),
    LargeBin = erlang:port_control(Port, 4, <<"65536">>),
    ?assertEqual(65536, byte_size(LargeBin)),
    ?assertEqual("list", erlang:port_control(Port, 5, <<"list">>)),
    port_close(Port).

call_rules() ->
    Port = open("call_rules:CallRules"),
    ?assertEqual({ok, [1, 2]}, erlang:port_call(Port, 0, [1, 2])),
    ?assertError(badarg, erlang:port_call(Port, 1, x)),
    ?assertError(badarg, pybridge:call(Port, 1, x)),
    ?assertError(badarg, erlang:port_call(Port, 2, x)),
    ?assertError({python, 'builtins.KeyError', <<"'missing'">>, _}, pybridge:call(Port, 2, x)),
    ?assertError({python, 'pybridge.EncodeError', _, _}, pybridge:call(Port, 3, x)),
    ?assertError(badarg, erlang:port_call(Port, 16#FFFFFF00, x)),
    ?assertError(badarg, pybridge:call(Port, -1, x)),
    ?assertEqual({ok, still_alive}, pybridge:call(Port, 0, still_alive)),
    port_close(Port).

missing_callbacks() ->
    Port = open("no_callbacks:NoCallbacks"),
    ?assertError(badarg, erlang:port_control(Port, 0, <<>>)),
    ?assertError(badarg, pybridge:control(Port, 0, <<>>)),
    ?assertError(badarg, erlang:port_call(Port, 0, x)),
    ?assertError(badarg, pybridge:call(Port, 0, x)),
    true = erlang:port_command(Port, <<"nobody listens">>),
    ?assertEqual(true, erlang:port_close(Port)).

term_mapping() ->
    Port = open("echo_term:EchoTerm"),
    Ref = make_ref(),
    Terms = [<<"bin">>, 0, -1, 255, 256, 1 bsl 70, -(1 bsl 70), 3.5, true, false, undefined,
             atom, 'ünïcödé', {}, {a, {b, c}}, [], [1, 2, 3], "string", [a | b], [1, 2 | <<"t">>],
             #{a => 1, <<"k">> => [x]}, #{[1] => {2}}, self(), Port, Ref, <<1:3>>,
             lists:seq(1, 300), [{k, v}]],
    [?assertEqual(T, pybridge:call(Port, 0, T)) || T <- Terms],
    [?assertEqual(T, erlang:port_call(Port, 0, T)) || T <- Terms],
    port_close(Port).

none_as_nil() ->
    Port = open("nil_atom:NilAtom"),
    ?assertEqual({true, nil}, pybridge:call(Port, 0, nil)),
    ?assertEqual({false, nil}, pybridge:call(Port, 0, undefined)),
    port_close(Port).

caller_connected() ->
    Self = self(),
    Port = open("who_calls:WhoCalls"),
    %% another process: a plain port_command (async) and the wrapper's control / call
    Helper = spawn_link(fun() ->
        true = erlang:port_command(Port, <<"x">>),
        [] = pybridge:control(Port, 0, <<>>),
        Self ! {seen, self(), pybridge:call(Port, 0, x)}
    end),
    receive {Port, {data, <<"ok">>}} -> ok after 2000 -> error(no_output) end,
    Seen = receive {seen, Helper, S} -> S after 5000 -> error(no_call) end,
    ?assertEqual({Self, Self}, maps:get(start, Seen)),
    ?assertEqual({Helper, Self}, maps:get(output, Seen)),
    ?assertEqual({Helper, Self}, maps:get(control, Seen)),
    ?assertEqual({Helper, Self}, maps:get(call, Seen)),
    %% the owner through the plain BIFs
    [] = erlang:port_control(Port, 0, <<>>),
    Seen2 = erlang:port_call(Port, 0, x),
    ?assertEqual({Self, Self}, maps:get(control, Seen2)),
    ?assertEqual({Self, Self}, maps:get(call, Seen2)),
    port_close(Port).

control_timeout() ->
    Port = pybridge:open("slow_control:SlowControl", [{timeout, 500}]),
    T0 = erlang:monotonic_time(millisecond),
    ?assertError(badarg, erlang:port_control(Port, 1, <<"800">>)),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 750),
    %% Python answers 1 late, while this control waits: that answer is discarded
    ?assertEqual("2", erlang:port_control(Port, 2, <<"0">>)),
    ?assertError({pybridge, timeout}, pybridge:control(Port, 3, <<"800">>)),
    ?assertEqual("4", pybridge:control(Port, 4, <<"0">>)),
    port_close(Port).

call_timeout() ->
    Port = pybridge:open("slow_control:SlowControl", [{timeout, 500}]),
    ?assertError(badarg, erlang:port_call(Port, 1, 800)),
    ?assertEqual(2, erlang:port_call(Port, 2, 0)),
    ?assertError({pybridge, timeout}, pybridge:call(Port, 3, 800)),
    ?assertEqual(4, pybridge:call(Port, 4, 0)),
    port_close(Port).

exception_in_output_is_logged() ->
    ok = logger:add_handler(pb_capture, pybridge_log_capture, #{config => #{to => self()},
                                                                  filter_default => log}),
    try
        Port = open("raising_output:RaisingOutput"),
        Other = open("upper:Upper"),
        true = erlang:port_command(Port, <<"boom">>),
        true = erlang:port_command(Port, <<"after">>),
        ?assertEqual(<<"after">>, receive {Port, {data, D}} -> D after 2000 -> timeout end),
        true = erlang:port_command(Other, <<"x">>),
        ?assertEqual(<<"X">>, receive {Other, {data, D2}} -> D2 after 2000 -> timeout end),
        {Level, Msg, Meta} = receive {logged, L, M, Md} -> {L, M, Md} after 2000 -> error(no_log) end,
        ?assertEqual(error, Level),
        ?assertNotEqual(nomatch, string:find(Msg, "boom in output")),
        ?assertNotEqual(nomatch, string:find(Msg, "Traceback")),
        ?assertEqual(<<"raising_output:RaisingOutput">>, maps:get(driver, Meta)),
        ?assert(is_integer(maps:get(pybridge_worker, Meta))),
        %% OTP's default handler prints events without a domain (its no_domain filter)
        ?assertMatch(#{}, logger_filters:domain(#{level => Level, msg => {string, Msg},
                                                  meta => Meta}, {log, undefined, []})),
        port_close(Port),
        port_close(Other)
    after
        logger:remove_handler(pb_capture)
    end.

stdout_and_stderr_are_logged() ->
    ok = logger:add_handler(pb_out_capture, pybridge_log_capture, #{config => #{to => self()},
                                                                    filter_default => log}),
    try
        P = open("noisy:Noisy"),
        [] = erlang:port_control(P, 0, <<"x1">>),
        Got = lists:sort([receive {logged, L, M, #{stream := S}} -> {S, L, M} after 2000 -> timeout end
                          || _ <- [1, 2, 3]]),
        ?assertEqual([{stderr, warning, "pybridge: to stderr x1"},
                      {stdout, notice, "pybridge: printed x1"},
                      {stdout, notice, "pybridge: raw fd 1 x1"}], Got),
        port_close(P)
    after
        logger:remove_handler(pb_out_capture)
    end.

close_calls_stop() ->
    File = filename:join(filename:basedir(user_cache, "pybridge_test"),
                         "stop_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(File),
    Port = pybridge:open("stop_marker:StopMarker", File, []),
    Port ! {self(), close},
    ?assertEqual(closed, receive {Port, closed} -> closed after 2000 -> timeout end),
    ?assertEqual({ok, <<"stopped">>}, wait_file(File, 50)),
    file:delete(File).

wait_file(File, 0) -> file:read_file(File);
wait_file(File, N) ->
    case file:read_file(File) of
        {ok, <<"stopped">>} = R -> R;
        _ -> timer:sleep(20), wait_file(File, N - 1)
    end.

python_path_option() ->
    {Dir, Mod} = pybridge_test_lib:module_in_new_dir(
                   "path_", "import pybridge\nclass D(pybridge.Driver):\n"
                            "    def call(self, c, t):\n        return 'from here'\n"),
    ?assertError({python, 'builtins.ModuleNotFoundError', _, _}, pybridge:open(Mod ++ ":D", [])),
    Port = pybridge:open(Mod ++ ":D", [{python_path, [Dir]}]),
    ?assertEqual(<<"from here">>, pybridge:call(Port, 0, x)),
    port_close(Port).

worker_down() ->
    process_flag(trap_exit, true),
    [OsPid] = worker_os_pids(),
    Ports = [open("slow_control:SlowControl") || _ <- lists:seq(1, 5)],
    Self = self(),
    %% The kill comes from a shell of its own: the waiting control below blocks this
    %% scheduler, so no Erlang timer on it could fire in time.
    os:cmd("(sleep 0.3; kill -9 " ++ integer_to_list(OsPid) ++ ") >/dev/null 2>&1 &"),
    T0 = erlang:monotonic_time(millisecond),
    Waiter = spawn_link(fun() ->
        Self ! {waited, catch pybridge:control(hd(Ports), 0, <<"3000">>)}
    end),
    Reasons = [receive {'EXIT', P, R} -> R after 2000 -> timeout end || P <- Ports],
    ?assertEqual(lists:duplicate(5, {pybridge, worker_down}), Reasons),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1300),
    ?assertMatch({waited, {'EXIT', {{pybridge, worker_down}, _}}},
                 receive {waited, _} = W -> W after 2000 -> timeout end),
    receive {'EXIT', Waiter, _} -> ok after 0 -> ok end,
    %% the next open gets a fresh worker
    New = open("upper:Upper"),
    {os_pid, NewOsPid} = erlang:port_info(New, os_pid),
    ?assertNotEqual(OsPid, NewOsPid),
    ?assertEqual("ih", pybridge:control(New, 0, <<"hi">>)),
    port_close(New),
    %% no zombie is left behind
    ?assertNot(zombie(OsPid)),
    process_flag(trap_exit, false),
    flush_msgs().

zombie(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} -> [_, After] = string:split(Stat, ") "), binary:first(After) =:= $Z;
        {error, enoent} -> false
    end.

pool_spreads_ports() ->
    ok = application:stop(pybridge),
    application:set_env(pybridge, pool_size, 2),
    try
        {ok, _} = application:ensure_all_started(pybridge),
        ?assertEqual(2, length(lists:usort(worker_os_pids()))),
        Ports = [open("upper:Upper") || _ <- lists:seq(1, 4)],
        Pids = [element(2, erlang:port_info(P, os_pid)) || P <- Ports],
        ?assertEqual(lists:usort(worker_os_pids()), lists:usort(Pids)),
        [port_close(P) || P <- Ports]
    after
        application:stop(pybridge),
        application:set_env(pybridge, pool_size, 1),
        {ok, _} = application:ensure_all_started(pybridge)
    end.
