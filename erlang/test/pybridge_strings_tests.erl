%% Elixir strings (issue 15): every pybridge function, option and setting that takes a spec,
%% args, a path or a name takes a binary as well as a charlist. The application here is
%% started with binaries only (python, python_path, worker_env); docs/ELIXIR.md relies on it.
-module(pybridge_strings_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

strings_test_() ->
    {setup,
     fun() ->
         _ = application:load(pybridge),
         ok = application:set_env(pybridge, python, list_to_binary(os:getenv("PYBRIDGE_PYTHON"))),
         ok = application:set_env(pybridge, python_path, [list_to_binary(filename:absname("tests/drivers"))]),
         ok = application:set_env(pybridge, worker_env, [{<<"PB_STRINGS">>, <<"from a binary">>}]),
         ok = application:set_env(pybridge, worker_groups, #{strs => #{size => 1}}),
         {ok, _} = application:ensure_all_started(pybridge)
     end,
     fun(_) ->
         application:stop(pybridge),
         [application:unset_env(pybridge, K) || K <- [python, worker_env, worker_groups]]
     end,
     [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()]}.

tests() ->
    [settings_as_binaries, open_with_binaries, python_path_binary, worker_group_binary,
     named_driver_binaries, bad_binaries_are_badarg].

%% python, python_path and worker_env given as binaries: the worker runs that Python, imports
%% from that directory and sees that variable.
settings_as_binaries() ->
    P = pybridge:open(<<"reports_env:ReportsEnv">>, [binary]),
    ?assertEqual(<<"from a binary">>, pybridge:call(P, 0, <<"PB_STRINGS">>)),
    port_close(P).

%% spec and args as binaries (args UTF-8, as an Elixir string is); command's and control's
%% data and call's term too. The args arrive as sent whatever the VM's file name encoding
%% (LANG=C makes it latin1).
open_with_binaries() ->
    E = pybridge:open(<<"echo_term:EchoTerm">>, <<"some args \"quoted\" é"/utf8>>, []),
    ?assertEqual(<<"some args \"quoted\" é"/utf8>>, pybridge:call(E, 1, none)),
    ?assertEqual(<<"a term">>, pybridge:call(E, 0, <<"a term">>)),
    port_close(E),
    %% a charlist holds characters (past 255 too): the same text arrives
    L = pybridge:open("echo_term:EchoTerm", [<<"some args ">>, "\"quoted\" é", 256], []),
    ?assertEqual(<<"some args \"quoted\" é"/utf8, 256/utf8>>, pybridge:call(L, 1, none)),
    port_close(L),
    P = pybridge:open(<<"upper:Upper">>, [binary]),
    true = pybridge:command(P, <<"hi">>),
    ?assertEqual({data, <<"HI">>}, receive {P, M} -> M after 5000 -> timeout end),
    ?assertEqual("cba", pybridge:control(P, 0, <<"abc">>)),
    port_close(P).

%% an open's own python_path as binaries, one with a space and a ':' (quoted on the way).
python_path_binary() ->
    {Dir, Mod} = pybridge_test_lib:module_in_new_dir(
                   "str path:", "import pybridge\nclass D(pybridge.Driver):\n"
                                "    def call(self, c, t):\n        return 'from the binary dir'\n"),
    Spec = list_to_binary(Mod ++ ":D"),
    ?assertError({python, 'builtins.ModuleNotFoundError', _, _}, pybridge:open(Spec, [])),
    P = pybridge:open(Spec, [{python_path, [list_to_binary(Dir)]}]),
    ?assertEqual(<<"from the binary dir">>, pybridge:call(P, 0, x)),
    port_close(P),
    ok = file:del_dir_r(Dir).

%% {worker_group, <<"strs">>} is the group strs: the port is served by that group's worker.
worker_group_binary() ->
    P = pybridge:open(<<"upper:Upper">>, [binary, {worker_group, <<"strs">>}]),
    #{os_pid := OsPid} = pybridge:info(P),
    ?assertEqual([strs], [G || #{group := G, os_pid := O} <- pybridge:stats(), O =:= OsPid]),
    port_close(P),
    ?assertError(badarg, pybridge:open(<<"upper:Upper">>, [{worker_group, <<"no_such_group">>}])).

%% load_driver/unload_driver with a binary name and spec.
named_driver_binaries() ->
    ok = pybridge:load_driver(<<"pb_str_upper">>, <<"upper:Upper">>),
    ?assertEqual({error, already_loaded}, pybridge:load_driver("pb_str_upper", "upper:Upper")),
    P = open_port({spawn_driver, "pb_str_upper"}, [binary]),
    ?assertEqual("cba", erlang:port_control(P, 0, <<"abc">>)),
    port_close(P),
    ok = pybridge:unload_driver(<<"pb_str_upper">>),
    ?assertEqual({error, not_loaded}, pybridge:unload_driver(<<"pb_str_upper">>)).

%% a binary is held to the same rules as a string.
bad_binaries_are_badarg() ->
    [?assertError(badarg, pybridge:load_driver(Name, <<"upper:Upper">>))
     || Name <- [<<"Upper">>, <<"pybridge">>, <<>>, <<"a b">>, <<255>>]],
    [?assertError(badarg, pybridge:open(Spec, [])) || Spec <- [<<"upper">>, <<"up per:Upper">>, <<>>]],
    ?assertError(badarg, pybridge:open(<<"upper:Upper">>, [{python_path, [<<>>]}])),
    ?assertError(badarg, pybridge:open(<<"upper:Upper">>, [{python_path, [<<"a", 0>>]}])).
