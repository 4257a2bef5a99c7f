%% max_frame: over the limit is an error, on either side, never an allocation.
-module(pybridge_limits_tests).
-include_lib("eunit/include/eunit.hrl").

limits_test_() ->
    {setup,
     fun() ->
         application:stop(pybridge),
         application:load(pybridge),
         application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
         application:set_env(pybridge, max_frame, 65536),
         {ok, _} = application:ensure_all_started(pybridge)
     end,
     fun(_) ->
         application:stop(pybridge),
         application:set_env(pybridge, max_frame, 268435456)
     end,
     [fun command_over_the_limit/0, fun control_over_the_limit/0, fun python_over_the_limit/0,
      fun call_erlang_over_the_limit/0]}.

command_over_the_limit() ->
    process_flag(trap_exit, true),
    P = pybridge:open("upper:Upper", [binary]),
    true = erlang:port_command(P, binary:copy(<<"x">>, 60000)),
    ?assertMatch({data, _}, receive {P, M} -> M after 2000 -> timeout end),
    true = erlang:port_command(P, binary:copy(<<"x">>, 70000)),
    ?assertEqual(pybridge_frame_too_large, receive {'EXIT', P, R} -> R after 2000 -> timeout end),
    process_flag(trap_exit, false).

control_over_the_limit() ->
    P = pybridge:open("upper:Upper", [binary]),
    Big = binary:copy(<<"x">>, 70000),
    ?assertError(badarg, erlang:port_control(P, 0, Big)),
    ?assertError({pybridge, frame_too_large}, pybridge:control(P, 0, Big)),
    ?assertEqual("cba", erlang:port_control(P, 0, <<"abc">>)),
    port_close(P).

python_over_the_limit() ->
    P = pybridge:open("big_output:BigOutput", [binary]),
    ?assertEqual("sent", erlang:port_control(P, 60000, <<>>)),
    ?assertMatch({data, _}, receive {P, M} -> M after 2000 -> timeout end),
    ?assertError({python, 'builtins.ValueError', _, _}, pybridge:control(P, 70000, <<>>)),
    ?assertEqual(none, receive {P, M2} -> M2 after 200 -> none end),
    ?assertEqual("sent", erlang:port_control(P, 10, <<>>)),
    port_close(P).

%% Port.call_erlang (tests/drivers/calls_erlang.py): a request over max_frame is refused in
%% Python (ValueError), a result over it is the call's error {pybridge, frame_too_large};
%% one just under it comes whole.
call_erlang_over_the_limit() ->
    P = pybridge:open("calls_erlang:CallsErlang", [binary]),
    ?assertMatch({'EXIT', {{python, 'builtins.ValueError', _, _}, _}},
                 catch pybridge:call(P, 3, {erlang, byte_size, 70000})),
    Result = fun(N) ->
                 ok = pybridge:call(P, 1, {binary, copy, [<<"x">>, N]}),
                 true = pybridge:command(P, "out"),
                 receive {out, Outcome} -> Outcome after 5000 -> none end
             end,
    ?assertEqual({erlang_error, error, {pybridge, frame_too_large}, true}, Result(70000)),
    ?assertEqual({ok, binary:copy(<<"x">>, 60000)}, Result(60000)),
    port_close(P).
