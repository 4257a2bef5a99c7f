%% Shared by the EUnit suites: the application with tests/drivers on its python_path,
%% the worker's resident memory, and a driver module in a directory of its own.
-module(pybridge_test_lib).
-export([start/0, stop/1, rss_kib/1, module_in_new_dir/2]).

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
