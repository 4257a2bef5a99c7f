%% Shared by the EUnit suites: the application with tests/drivers on its python_path,
%% the worker's resident memory, and waiting for a condition.
-module(pybridge_test_lib).
-export([start/0, stop/1, rss_kib/1, wait_until/2]).

-spec start() -> {ok, [atom()]}.
start() ->
    _ = application:load(pybridge),
    ok = application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
    {ok, _} = application:ensure_all_started(pybridge).

-spec stop(term()) -> ok | {error, term()}.
stop(_) ->
    application:stop(pybridge).

-spec rss_kib(non_neg_integer()) -> non_neg_integer().
rss_kib(OsPid) ->
    {ok, S} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    {match, [K]} = re:run(S, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]),
    list_to_integer(K).

%% true once F() is, polled every 10 ms; false if it is not within Ms.
-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> boolean().
wait_until(F, Ms) ->
    wait_loop(F, erlang:monotonic_time(millisecond) + Ms).

-spec wait_loop(fun(() -> boolean()), integer()) -> boolean().
wait_loop(F, Deadline) ->
    case F() of
        true -> true;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> false;
                false -> timer:sleep(10), wait_loop(F, Deadline)
            end
    end.
