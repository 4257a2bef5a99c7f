%% pybridge_python, ErlPort's python module on pybridge (tests/drivers/erlport_style.py):
%% start's options, call's results and errors, dotted functions and standard modules, calls
%% back into Erlang, cast to a message handler (dropped without one), the call timeout and
%% its late answer, start_link/1's link, an instance that is stopped or whose worker dies,
%% and one whose function hangs.
-module(pybridge_python_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

python_test_() ->
    {setup, fun setup/0, fun teardown/1,
     [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}}
      || T <- [start_options, call_results_and_errors, calls_back_into_erlang,
               cast_goes_to_the_message_handler, call_timeout, stopped_instance,
               instance_down, hung_function_ends_its_instance_only]]}.

%% a short callback_limit (hung_function_ends_its_instance_only), no shared python_path
%% (start_options: an instance's modules come from its own), the default pool_size's one
%% worker; restored after
setup() ->
    application:stop(pybridge),
    _ = application:load(pybridge),
    Saved = [{K, application:get_env(pybridge, K)} || K <- [callback_limit, python_path]],
    ok = application:set_env(pybridge, callback_limit, 1500),
    ok = application:set_env(pybridge, python_path, []),
    {ok, _} = application:ensure_all_started(pybridge),
    Saved.

teardown(Saved) ->
    application:stop(pybridge),
    [case V of
         {ok, Value} -> application:set_env(pybridge, K, Value);
         undefined -> application:unset_env(pybridge, K)
     end || {K, V} <- Saved].

dir() -> filename:absname("tests/drivers").

start() ->
    {ok, P} = pybridge_python:start([{python_path, dir()}]),
    P.

start_options() ->
    %% a string, `:'-separated directories, a list, binaries
    [begin
         {ok, P} = pybridge_python:start([{python_path, Paths}]),
         ?assertEqual(5, pybridge_python:call(P, erlport_style, add, [2, 3])),
         ok = pybridge_python:stop(P)
     end || Paths <- [dir(), "/nonexistent:" ++ dir(), [dir()], [list_to_binary(dir())],
                      list_to_binary(dir())]],
    %% the node's own interpreter may be named; another one cannot be had
    {ok, P1} = pybridge_python:start([{python, pybridge_config:python()}]),
    ?assertEqual(3, pybridge_python:call(P1, operator, add, [1, 2])),
    pybridge_python:stop(P1),
    ?assertMatch({error, {other_python, "/bin/sh", _}}, pybridge_python:start([{python, "/bin/sh"}])),
    ?assertEqual({error, {invalid_option, {python_path, 42}}},
                 pybridge_python:start([{python_path, 42}])),
    %% without python_path, modules the node's python_path or Python itself has
    {ok, P2} = pybridge_python:start(),
    ?assertEqual(<<"a-b">>, pybridge_python:call(P2, operator, concat, [<<"a-">>, <<"b">>])),
    ?assertMatch({python, 'builtins.ModuleNotFoundError', _, _},
                 error_of(fun() -> pybridge_python:call(P2, erlport_style, add, [1, 2]) end)),
    pybridge_python:stop(P2).

call_results_and_errors() ->
    P = start(),
    ?assertEqual(5, pybridge_python:call(P, erlport_style, add, [2, 3])),
    ?assertEqual([1, 2], pybridge_python:call(P, erlport_style, add, [[1], [2]])),
    ?assertEqual(<<"hello joe">>, pybridge_python:call(P, erlport_style, 'greeter.greet', [<<"joe">>])),
    ?assertEqual(2.0, pybridge_python:call(P, math, sqrt, [4])),
    {python, Class, Message, Traceback} =
        error_of(fun() -> pybridge_python:call(P, erlport_style, fail, [<<"bad input">>]) end),
    ?assertEqual({'builtins.ValueError', <<"bad input">>}, {Class, Message}),
    ?assertNotEqual(nomatch, binary:match(Traceback, <<"erlport_style.py">>)),
    ?assertMatch({python, 'builtins.AttributeError', _, _},
                 error_of(fun() -> pybridge_python:call(P, erlport_style, nope, []) end)),
    ?assertMatch({python, 'builtins.TypeError', _, _},
                 error_of(fun() -> pybridge_python:call(P, erlport_style, add, [1]) end)),
    %% the instance goes on after errors
    ?assertEqual(7, pybridge_python:call(P, erlport_style, add, [3, 4])),
    pybridge_python:stop(P).

calls_back_into_erlang() ->
    P = start(),
    ?assertEqual(node(), pybridge_python:call(P, erlport_style, node_name, [])),
    ?assertMatch({runtime_error, <<"pybridge.erlport works inside", _/binary>>},
                 pybridge_python:call(P, erlport_style, outside_a_call, [])),
    pybridge_python:stop(P).

cast_goes_to_the_message_handler() ->
    P = start(),
    ok = pybridge_python:cast(P, dropped),
    ok = pybridge_python:call(P, erlport_style, echo_casts_to, [self()]),
    ok = pybridge_python:cast(P, {hello, [1, 2]}),
    ?assertEqual({cast, {hello, [1, 2]}}, receive {cast, _} = M -> M after 5000 -> none end),
    ok = pybridge_python:call(P, erlport_style, drop_casts, []),
    ok = pybridge_python:cast(P, again),
    %% a call after the cast is answered after it: nothing came of it
    ?assertEqual(1, pybridge_python:call(P, erlport_style, add, [0, 1])),
    ?assertEqual(none, receive {cast, _} = M2 -> M2 after 100 -> none end),
    %% a handler that raises is logged; the instance and its handler go on
    ok = pybridge_python:call(P, erlport_style, fragile_handler, [self()]),
    ok = pybridge_python:cast(P, boom),
    ok = pybridge_python:cast(P, fine),
    ?assertEqual({cast, fine}, receive {cast, _} = M3 -> M3 after 5000 -> none end),
    pybridge_python:stop(P),
    ?assertEqual(ok, pybridge_python:cast(P, after_stop)).

call_timeout() ->
    P = start(),
    ?assertEqual({pybridge, timeout},
                 error_of(fun() -> pybridge_python:call(P, erlport_style, sleep, [0.5],
                                                         [{timeout, 100}]) end)),
    %% the late answer went to the call's proxy, which is gone: nothing reaches the caller
    ?assertEqual(slept, pybridge_python:call(P, erlport_style, sleep, [0])),
    ?assertEqual(none, receive Any -> Any after 600 -> none end),
    pybridge_python:stop(P).

stopped_instance() ->
    %% start/1 leaves the instance unlinked (as ErlPort's), start_link/1 links it
    {ok, L} = pybridge_python:start_link([{python_path, dir()}]),
    ?assertEqual({links, [self()]}, erlang:port_info(L, links)),
    pybridge_python:stop(L),
    P = start(),
    ?assertEqual({links, []}, erlang:port_info(P, links)),
    ok = pybridge_python:stop(P),
    ok = pybridge_python:stop(P),
    ?assertEqual(badarg, error_of(fun() -> pybridge_python:call(P, erlport_style, add, [1, 2]) end)),
    %% stopped while a call waits
    Q = start(),
    Caller = self(),
    spawn(fun() -> Caller ! {waited, error_of(fun() -> pybridge_python:call(Q, erlport_style,
                                                                           sleep, [1]) end)} end),
    timer:sleep(100),
    ok = pybridge_python:stop(Q),
    ?assertEqual({instance_down, normal}, receive {waited, R} -> R after 5000 -> none end).

instance_down() ->
    P = start(),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    Caller = self(),
    spawn(fun() -> timer:sleep(200), os:cmd("kill -9 " ++ integer_to_list(OsPid)), Caller ! killed end),
    ?assertEqual({instance_down, {pybridge, worker_down}},
                 error_of(fun() -> pybridge_python:call(P, erlport_style, sleep, [10]) end)),
    receive killed -> ok end.

error_of(F) ->
    try F() of V -> {returned, V} catch error:Reason -> Reason end.

%% Each instance runs on a thread of its own: one whose function hangs ends alone.
hung_function_ends_its_instance_only() ->
    Hung = start(),
    Other = start(),
    ?assertEqual(erlang:port_info(Hung, os_pid), erlang:port_info(Other, os_pid)),
    Caller = self(),
    spawn(fun() -> Caller ! {hung, error_of(fun() -> pybridge_python:call(Hung, erlport_style,
                                                                         sleep, [30]) end)} end),
    timer:sleep(100),
    ?assertEqual(3, pybridge_python:call(Other, erlport_style, add, [1, 2])),
    ?assertEqual({instance_down, {pybridge, hung}},
                 receive {hung, R} -> R after 10000 -> still_waiting end),
    ?assertEqual(5, pybridge_python:call(Other, erlport_style, add, [2, 3])),
    pybridge_python:stop(Other).
