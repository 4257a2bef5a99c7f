%% The application does not start, and says why (issue 15): each broken setting of
%% docs/TROUBLESHOOTING.md's "The application does not start", started for real.
-module(pybridge_start_errors_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

start_errors_test_() ->
    [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()].

tests() ->
    [missing_python_path, missing_python_name, python_without_the_package,
     python_with_another_protocol, driver_that_cannot_load].

%% The start error with the app env python set to Python; the setting is put back.
start_with_python(Python) ->
    _ = application:load(pybridge),
    {ok, Old} = application:get_env(pybridge, python),
    application:set_env(pybridge, python, Python),
    try
        {error, {pybridge, {{shutdown, {failed_to_start_child, {pybridge_manager, default, 1},
                                        Reason}}, _}}} = application:ensure_all_started(pybridge),
        ?assertEqual(undefined, whereis(pybridge_sup)),
        Reason
    after
        application:set_env(pybridge, python, Old)
    end.

%% The interpreter the tests run, wrapped: `#!/bin/sh` then Line with $REAL for it.
wrapper(Name, Line) ->
    Real = os:getenv("PYBRIDGE_PYTHON"),
    File = filename:join([filename:basedir(user_cache, "pybridge_test"), "start_errors", Name]),
    ok = filelib:ensure_dir(File),
    ok = file:write_file(File, ["#!/bin/sh\nREAL='", Real, "'\n", Line, "\n"]),
    ok = file:change_mode(File, 8#755),
    File.

missing_python_path() ->
    ?assertEqual({python_not_found, "/no/such/dir/python3"}, start_with_python("/no/such/dir/python3")).

%% a name looked up on PATH; a binary (Elixir) is reported as the string it names
missing_python_name() ->
    ?assertEqual({python_not_found, "no-such-python-pb15"}, start_with_python(<<"no-such-python-pb15">>)).

%% A real CPython that cannot see the package: -I -S leave out site-packages (where the
%% editable install is) and the working directory (where its sources are), as for a
%% /usr/bin/python3 the package was never installed into.
python_without_the_package() ->
    Python = wrapper("bare_python", "exec \"$REAL\" -I -S \"$@\""),
    ?assertEqual({python_without_pybridge, Python}, start_with_python(Python)).

%% An interpreter whose pybridge is of another version: an older package whose command line
%% refuses the worker's options (exit 2 before any handshake), protocol version 1.
python_with_another_protocol() ->
    Fake = filename:join([filename:basedir(user_cache, "pybridge_test"), "start_errors",
                          "old", "pybridge"]),
    ok = filelib:ensure_dir(filename:join([Fake, "_wire", "x"])),
    ok = file:write_file(filename:join(Fake, "__init__.py"), "__version__ = '0.0.1'\n"),
    ok = file:write_file(filename:join(Fake, "__main__.py"),
                         "import sys\nsys.stderr.write('no such option: --fd\\n')\nsys.exit(2)\n"),
    ok = file:write_file(filename:join([Fake, "_wire", "__init__.py"]), ""),
    ok = file:write_file(filename:join([Fake, "_wire", "protocol.py"]), "PROTOCOL_VERSION = 1\n"),
    Python = wrapper("old_pybridge_python",
                     ["cd '", filename:dirname(Fake), "' && exec \"$REAL\" -S \"$@\""]),
    ?assertEqual({python_without_pybridge, Python}, start_with_python(Python)).

%% A pybridge.so that is no shared object, in a copy of the application started by a node
%% of its own: {driver_load_failed, Path, erl_ddll's text}.
driver_that_cannot_load() ->
    Lib = filename:join([filename:basedir(user_cache, "pybridge_test"), "start_errors", "lib",
                         "pybridge"]),
    _ = file:del_dir_r(Lib),
    Ebin = filename:dirname(code:which(pybridge)),
    ok = filelib:ensure_dir(filename:join([Lib, "ebin", "x"])),
    ok = filelib:ensure_dir(filename:join([Lib, "priv", "x"])),
    [{ok, _} = file:copy(F, filename:join([Lib, "ebin", filename:basename(F)]))
     || F <- filelib:wildcard(filename:join(Ebin, "*"))],
    So = filename:join([Lib, "priv", "pybridge.so"]),
    ok = file:write_file(So, "not an ELF file\n"),
    Erl = os:find_executable("erl"),
    Port = open_port({spawn_executable, Erl},
                     [{args, ["-noshell", "-pa", filename:join(Lib, "ebin"), "-eval",
                              "logger:set_primary_config(level, none),"
                              "io:format(\"~0p~n\", [application:ensure_all_started(pybridge)]),"
                              " halt()."]},
                      exit_status, binary, stderr_to_stdout]),
    Out = collect(Port, []),
    {ok, Tokens, _} = erl_scan:string(binary_to_list(Out) ++ "."),
    {ok, Result} = erl_parse:parse_term(Tokens),
    ?assertMatch({error, {pybridge, {{driver_load_failed, So, _}, {pybridge_app, start, _}}}},
                 Result),
    {error, {pybridge, {{driver_load_failed, So, Text}, _}}} = Result,
    %% the dynamic loader's own words, as erl_ddll:format_error/1 gives them
    ?assertMatch({match, _}, re:run(Text, "invalid ELF header|file too short")).

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, [Acc, D]);
        {Port, {exit_status, _}} -> string:trim(iolist_to_binary(Acc))
    after 30000 -> error(timeout)
    end.
