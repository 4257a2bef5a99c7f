%% Shared by the EUnit suites: the application with tests/drivers on its python_path,
%% the worker's resident memory, waiting for a condition, and a driver module in a directory
%% of its own.
-module(pybridge_test_lib).
-export([start/0, stop/1, rss_kib/1, wait_until/2, module_in_new_dir/2]).

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

%% A fresh directory (its name starts with DirPrefix) holding one module of a fresh name
%% with Source: {Dir, Module}.
-spec module_in_new_dir(string(), iodata()) -> {file:filename(), string()}.
module_in_new_dir(DirPrefix, Source) ->
    Dir = filename:join(filename:basedir(user_cache, "pybridge_test"),
                        DirPrefix ++ integer_to_list(erlang:unique_integer([positive]))),
    Mod = "only_here_" ++ integer_to_list(erlang:unique_integer([positive])),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    ok = file:write_file(filename:join(Dir, Mod ++ ".py"), Source),
    {Dir, Mod}.
