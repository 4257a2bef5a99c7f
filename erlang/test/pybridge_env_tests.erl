%% The worker's environment: the one the node was started with (os:putenv does not reach
%% it), with the app env worker_env's variables set ({Name, Value}) or removed
%% ({Name, false}); entries of the wrong type are left out, as are python_path entries that
%% are no directory names (pybridge_config).
-module(pybridge_env_tests).
-include_lib("eunit/include/eunit.hrl").

worker_env_test_() ->
    {setup,
     fun() ->
         _ = application:load(pybridge),
         ok = application:set_env(pybridge, worker_env,
                                  [{"PB_ENV_TEST_SET", "yes"}, {<<"PB_ENV_TEST_BIN">>, <<"b">>},
                                   {"HOME", false}, {"1BAD", "x"}, {"A=B", "x"},
                                   {"PB_ENV_TEST_NUL", [$a, 0]}, not_a_pair, {"PB_ENV_TEST_INT", 7}]),
         ok = application:set_env(pybridge, python_path,
                                  [123, "", filename:absname("tests/drivers")]),
         {ok, _} = application:ensure_all_started(pybridge)
     end,
     fun(_) ->
         application:stop(pybridge),
         application:unset_env(pybridge, worker_env)
     end,
     fun() ->
         P = pybridge:open("reports_env:ReportsEnv", [binary]),
         Env = fun(Name) -> pybridge:call(P, 0, Name) end,
         ?assertEqual(<<"yes">>, Env(<<"PB_ENV_TEST_SET">>)),
         ?assertEqual(<<"b">>, Env(<<"PB_ENV_TEST_BIN">>)),
         ?assertEqual(undefined, Env(<<"HOME">>)),
         ?assertEqual(list_to_binary(os:getenv("PATH")), Env(<<"PATH">>)),
         ?assertEqual(undefined, Env(<<"PB_ENV_TEST_NUL">>)),
         ?assertEqual(undefined, Env(<<"PB_ENV_TEST_INT">>)),
         port_close(P)
     end}.
