%% Hot code reload (issue 15, pybridge:reload/1) against the real node, driver and workers.
%% Each test copies tests/drivers/reloadable.py into a directory of its own under a fresh
%% module name, opens it with that directory as python_path (or from the shared
%% python_path, which the fixture extends), then rewrites the file: a new VERSION, a syntax
%% error, an exception at import. Ports with code_change switch and keep their count; ports
%% without keep the old code; failures change nothing; under a steady stream of commands
%% and controls nothing is lost or reordered, under either locking.
-module(pybridge_reload_tests).
-include_lib("eunit/include/eunit.hrl").

-define(DRIVER, "tests/drivers/reloadable.py").

reload_test_() ->
    {setup, fun start/0, fun stop/1,
     fun(Shared) ->
         [{timeout, 30, fun a_port_with_code_change_switches_and_keeps_its_state/0},
          {timeout, 30, fun a_port_without_code_change_keeps_the_old_code/0},
          {timeout, 30, fun a_syntax_error_changes_nothing/0},
          {timeout, 30, fun an_exception_at_import_changes_nothing/0},
          {timeout, 30, fun a_raising_code_change_keeps_that_port_old/0},
          {timeout, 30, fun a_class_gone_from_the_new_code_keeps_its_ports_old/0},
          {timeout, 30, fun each_private_namespace_reloads_its_own_file/0},
          {timeout, 30, fun a_module_of_a_package_reloads/0},
          {timeout, 30, fun every_worker_of_every_group_reloads/0},
          {timeout, 30, fun a_failed_load_in_one_worker_changes_no_worker/0},
          {timeout, 30, {"the shared python_path reloads",
                         fun() -> the_shared_python_path_reloads(Shared) end}},
          {timeout, 30, fun what_is_not_loaded_or_not_a_module_is_refused/0},
          {timeout, 30, fun a_port_not_reached_in_time_keeps_the_old_code/0},
          {timeout, 30, fun a_port_that_closes_before_its_turn_counts_for_nothing/0}]
         ++ [{timeout, 30, {"a busy port switches after: " ++ Class ++ " " ++ Busy,
                            fun() -> a_busy_port_switches_after(Class, Busy) end}}
             || Class <- ["Upgrades", "LockedUpgrades"], Busy <- ["sleep", "slow"]]
         ++ [{timeout, 120, {"under load: " ++ Class, fun() -> under_load(Class) end}}
             || Class <- ["Upgrades", "LockedUpgrades", "Plain", "LockedPlain"]]
     end}.

%% The application with a temporary directory on the shared python_path too, two workers
%% in the default group and two in a group of its own.
start() ->
    Shared = tmp_dir(),
    _ = application:stop(pybridge),
    _ = application:load(pybridge),
    ok = application:set_env(pybridge, python_path, [filename:absname("tests/drivers"), Shared]),
    ok = application:set_env(pybridge, pool_size, 2),
    ok = application:set_env(pybridge, worker_groups, #{rl_group => #{size => 2}}),
    {ok, _} = application:ensure_all_started(pybridge),
    Shared.

stop(_Shared) ->
    _ = application:stop(pybridge),
    application:unset_env(pybridge, pool_size),
    application:unset_env(pybridge, worker_groups),
    %% every test's directories, even those of a test that failed
    [ok = file:del_dir_r(D) || D <- filelib:wildcard(tmp_dir_prefix() ++ "*")],
    ok.

tmp_dir() ->
    Dir = tmp_dir_prefix() ++ integer_to_list(erlang:unique_integer([positive])),
    ok = file:make_dir(Dir),
    Dir.

tmp_dir_prefix() ->
    filename:join(case os:getenv("TMPDIR") of false -> "/tmp"; T -> T end,
                  "pybridge_reload_" ++ os:getpid() ++ "_").

%% reloadable.py as a fresh module of Dir; its name
new_module(Dir) ->
    Mod = "rl_" ++ integer_to_list(erlang:unique_integer([positive])),
    write(Dir, Mod, 1),
    Mod.

write(Dir, Mod, Version) ->
    {ok, Src} = file:read_file(?DRIVER),
    write_source(Dir, Mod, binary:replace(Src, <<"VERSION = 1">>,
                                          <<"VERSION = ", (integer_to_binary(Version))/binary>>)).

write_source(Dir, Mod, Src) ->
    ok = file:write_file(filename:join(Dir, Mod ++ ".py"), Src).

open(Dir, Mod, Class) ->
    pybridge:open(Mod ++ ":" ++ Class, [binary, {python_path, [Dir]}]).

%% {Version, Count, Data} of an answer "vV N Data"
parse(Answer) ->
    [<<"v", V/binary>>, N, Data] = binary:split(iolist_to_binary(Answer), <<" ">>, [global]),
    {binary_to_integer(V), binary_to_integer(N), Data}.

control(P, Data) ->
    parse(pybridge:control(P, 0, Data)).

a_port_with_code_change_switches_and_keeps_its_state() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, "Upgrades"),
    P2 = open(Dir, Mod, "Plain"),           % the group's other worker has the module too
    {1, 1, <<"a">>} = control(P, <<"a">>),
    {1, 2, <<"b">>} = parse(pybridge:control(P, 2, <<"b">>)),      % announce the switch
    write(Dir, Mod, 2),
    ?assertEqual({ok, #{upgraded => 1, kept => 1}}, pybridge:reload(list_to_binary(Mod))),
    %% sent by code_change, and out at once: nothing else happens on the port meanwhile
    ?assertEqual(ok, receive {P, {data, <<"code_change">>}} -> ok after 5000 -> missing end),
    ?assertEqual({2, 3, <<"c">>}, control(P, <<"c">>)),
    ?assertEqual({2, 3, true}, pybridge:call(P, 0, x)),      % the same self.port
    true = port_command(P, <<"d">>),
    ?assertEqual({2, 4, <<"d">>}, receive {P, {data, D}} -> parse(D) after 5000 -> none end),
    %% opened afterwards, one on each worker (the one with the fewest ports): new code
    Qs = [open(Dir, Mod, "Upgrades") || _ <- [1, 2]],
    ?assertEqual([{2, 1, <<"e">>}, {2, 1, <<"e">>}], [control(Q, <<"e">>) || Q <- Qs]),
    [port_close(X) || X <- [P, P2 | Qs]].

a_port_without_code_change_keeps_the_old_code() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, "Plain"),
    {1, 1, _} = control(P, <<"a">>),
    write(Dir, Mod, 2),
    ?assertEqual({ok, #{upgraded => 0, kept => 1}}, pybridge:reload(list_to_atom(Mod))),
    ?assertEqual({1, 2, <<"b">>}, control(P, <<"b">>)),    % the old code, to the end
    Q = open(Dir, Mod, "Plain"),
    ?assertEqual({2, 1, <<"c">>}, control(Q, <<"c">>)),
    write(Dir, Mod, 3),                                     % a second reload: both kept
    ?assertEqual({ok, #{upgraded => 0, kept => 2}}, pybridge:reload(Mod)),
    ?assertEqual({1, 3, <<"d">>}, control(P, <<"d">>)),
    ?assertEqual({2, 2, <<"e">>}, control(Q, <<"e">>)),
    port_close(P),
    port_close(Q).

a_syntax_error_changes_nothing() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, "Upgrades"),
    P2 = open(Dir, Mod, "Upgrades"),        % both workers of the group have the module
    {1, 1, _} = control(P, <<"a">>),
    {ok, Src} = file:read_file(?DRIVER),
    write_source(Dir, Mod, <<Src/binary, "\ndef broken(:\n">>),
    {error, {python, 'builtins.SyntaxError', _, Trace}} = pybridge:reload(Mod),
    ?assertMatch({match, _}, re:run(Trace, Mod ++ "\\.py")),
    ?assertEqual({1, 2, <<"b">>}, control(P, <<"b">>)),
    Q = open(Dir, Mod, "Upgrades"),                         % the old module still serves
    ?assertEqual({1, 1, <<"c">>}, control(Q, <<"c">>)),
    write(Dir, Mod, 3),                                     % fixed: all switch
    ?assertEqual({ok, #{upgraded => 3, kept => 0}}, pybridge:reload(Mod)),
    ?assertEqual({3, 3, <<"d">>}, control(P, <<"d">>)),
    ?assertEqual({3, 2, <<"e">>}, control(Q, <<"e">>)),
    [port_close(X) || X <- [P, P2, Q]].

an_exception_at_import_changes_nothing() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, "Upgrades"),
    {ok, Src} = file:read_file(?DRIVER),
    New = binary:replace(Src, <<"VERSION = 1">>, <<"VERSION = 2">>),
    %% half the module has run when it raises: its new tag() must not reach the old code
    write_source(Dir, Mod, binary:replace(New, <<"\nclass Plain">>,
                                          <<"\nraise LookupError('no v2 today')\nclass Plain">>)),
    ?assertMatch({error, {python, 'builtins.LookupError', <<"no v2 today">>, _}},
                 pybridge:reload(Mod)),
    ?assertEqual({1, 1, <<"a">>}, control(P, <<"a">>)),
    port_close(P).

a_raising_code_change_keeps_that_port_old() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    Refuses = open(Dir, Mod, "Upgrades"),
    Agrees = open(Dir, Mod, "LockedUpgrades"),
    {1, 1, _} = parse(pybridge:control(Refuses, 1, <<"refuse">>)),
    {1, 1, _} = control(Agrees, <<"a">>),
    write(Dir, Mod, 2),
    {error, {code_change, [{python, 'builtins.RuntimeError', <<"refused by version 2">>, Trace}],
             #{upgraded := 1, kept := 1}}} = pybridge:reload(Mod),
    ?assertMatch({match, _}, re:run(Trace, "code_change")),
    ?assertEqual({1, 2, <<"b">>}, control(Refuses, <<"b">>)),
    ?assertEqual({2, 2, <<"c">>}, control(Agrees, <<"c">>)),
    port_close(Refuses),
    port_close(Agrees).

%% One module name, two open python_paths: each port's private package reloads its own file.
each_private_namespace_reloads_its_own_file() ->
    A = tmp_dir(),
    B = tmp_dir(),
    Mod = new_module(A),
    write(B, Mod, 10),
    PA = open(A, Mod, "Upgrades"),
    PB = open(B, Mod, "Upgrades"),
    {1, 1, _} = control(PA, <<"a">>),
    {10, 1, _} = control(PB, <<"b">>),
    write(A, Mod, 2),
    write(B, Mod, 20),
    ?assertEqual({ok, #{upgraded => 2, kept => 0}}, pybridge:reload(Mod)),
    ?assertEqual({2, 2, <<"c">>}, control(PA, <<"c">>)),
    ?assertEqual({20, 2, <<"d">>}, control(PB, <<"d">>)),
    port_close(PA),
    port_close(PB).

%% "pkg.mod:Upgrades": reload("pkg.mod") runs pkg/mod.py again; reload("pkg") runs only
%% pkg/__init__.py, so the port keeps its code.
a_module_of_a_package_reloads() ->
    Dir = tmp_dir(),
    Pkg = new_module(Dir),                  % a fresh name; the package is a directory
    ok = file:delete(filename:join(Dir, Pkg ++ ".py")),
    PkgDir = filename:join(Dir, Pkg),
    ok = file:make_dir(PkgDir),
    ok = file:write_file(filename:join(PkgDir, "__init__.py"), <<>>),
    write(PkgDir, "mod", 1),
    P = open(Dir, Pkg ++ ".mod", "Upgrades"),
    {1, 1, _} = control(P, <<"a">>),
    write(PkgDir, "mod", 2),
    ?assertEqual({ok, #{upgraded => 0, kept => 0}}, pybridge:reload(Pkg)),
    ?assertEqual({1, 2, <<"b">>}, control(P, <<"b">>)),
    ?assertEqual({ok, #{upgraded => 1, kept => 0}}, pybridge:reload(Pkg ++ ".mod")),
    ?assertEqual({2, 3, <<"c">>}, control(P, <<"c">>)),
    port_close(P).

%% Four ports on four workers (two groups): one reload switches them all.
every_worker_of_every_group_reloads() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    Ports = [pybridge:open(Mod ++ ":Upgrades", [binary, {python_path, [Dir]}, {worker_group, G}])
             || G <- [default, default, rl_group, rl_group]],
    ?assertEqual(4, length(lists:usort([maps:get(os_pid, pybridge:info(P)) || P <- Ports]))),
    [{1, 1, _} = control(P, <<"a">>) || P <- Ports],
    write(Dir, Mod, 2),
    ?assertEqual({ok, #{upgraded => 4, kept => 0}}, pybridge:reload(Mod)),
    ?assertEqual([{2, 2, <<"b">>} || _ <- Ports], [control(P, <<"b">>) || P <- Ports]),
    [port_close(P) || P <- Ports].

%% The new module has no class of that name any more: its ports keep the old one, and
%% opening it now fails as for any class that is not there.
a_class_gone_from_the_new_code_keeps_its_ports_old() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, "Upgrades"),
    {ok, Src} = file:read_file(?DRIVER),
    write_source(Dir, Mod, binary:replace(Src, <<"Upgrades">>, <<"Renamed">>, [global])),
    ?assertEqual({ok, #{upgraded => 0, kept => 1}}, pybridge:reload(Mod)),
    ?assertEqual({1, 1, <<"a">>}, control(P, <<"a">>)),
    ?assertError({python, 'builtins.TypeError', _, _}, open(Dir, Mod, "Upgrades")),
    port_close(P).

%% One module name from two directories, on workers of two groups; the new file of one is
%% broken: the load fails there, and the workers whose new file was fine keep the old code.
%% (Each worker of a group has the module, as a worker that never imported it imports the
%% file as it is.)
a_failed_load_in_one_worker_changes_no_worker() ->
    Good = tmp_dir(),
    Bad = tmp_dir(),
    Mod = new_module(Good),
    write(Bad, Mod, 1),
    PG = pybridge:open(Mod ++ ":Upgrades", [binary, {python_path, [Good]}]),
    PG2 = pybridge:open(Mod ++ ":Upgrades", [binary, {python_path, [Good]}]),  % both workers
    PB = pybridge:open(Mod ++ ":Upgrades", [binary, {python_path, [Bad]},
                                            {worker_group, rl_group}]),
    write(Good, Mod, 2),
    {ok, Src} = file:read_file(?DRIVER),
    write_source(Bad, Mod, <<Src/binary, "\ndef broken(:\n">>),
    ?assertMatch({error, {python, 'builtins.SyntaxError', _, _}}, pybridge:reload(Mod)),
    ?assertEqual({1, 1, <<"a">>}, control(PG, <<"a">>)),
    ?assertEqual({1, 1, <<"b">>}, control(PB, <<"b">>)),
    QG = pybridge:open(Mod ++ ":Upgrades", [binary, {python_path, [Good]}]),
    ?assertEqual({1, 1, <<"c">>}, control(QG, <<"c">>)),    % the load was undone there too
    [port_close(P) || P <- [PG, PG2, PB, QG]].

%% From the shared python_path (no open option): the new class's worker_group attribute,
%% which pybridge:open remembers per class, holds for the ports opened afterwards.
the_shared_python_path_reloads(Shared) ->
    Mod = new_module(Shared),
    P = pybridge:open(Mod ++ ":Upgrades", [binary]),
    {1, 1, _} = control(P, <<"a">>),
    ?assertEqual(default, group_of(P)),
    write(Shared, Mod, 2),
    {ok, Src} = file:read_file(filename:join(Shared, Mod ++ ".py")),
    write_source(Shared, Mod, binary:replace(Src, <<"class Upgrades(Plain):\n">>,
                                             <<"class Upgrades(Plain):\n"
                                               "    worker_group = \"rl_group\"\n">>)),
    ?assertEqual({ok, #{upgraded => 1, kept => 0}}, pybridge:reload(Mod)),
    ?assertEqual({2, 2, <<"b">>}, control(P, <<"b">>)),
    ?assertEqual(default, group_of(P)),                     % an open port stays put
    Q = pybridge:open(Mod ++ ":Upgrades", [binary]),
    ?assertEqual({2, 1, <<"c">>}, control(Q, <<"c">>)),
    ?assertEqual(rl_group, group_of(Q)),
    port_close(P),
    port_close(Q).

group_of(Port) ->
    OsPid = maps:get(os_pid, pybridge:info(Port)),
    [Group] = [G || #{os_pid := O, group := G} <- pybridge:stats(), O =:= OsPid],
    Group.

what_is_not_loaded_or_not_a_module_is_refused() ->
    ?assertEqual({error, not_loaded}, pybridge:reload("rl_never_imported")),
    %% the standard library is not the python_path's: never reloaded
    ?assertEqual({error, not_loaded}, pybridge:reload(os)),
    [?assertError(badarg, pybridge:reload(Bad))
     || Bad <- ["1abc", "a b", "mod:Class", "", <<"a..b">>, 42, ["a" | b], "a\x{400}",
                lists:duplicate(5000, $a)]].

%% The port is busy when the reload comes: its async def output is pending ("sleep"), or a
%% callback runs ("slow"; under port-level locking on the port's thread, while the worker's
%% loop reads the reload). It switches only after that has ended: the count the old instance
%% took in its last step goes on. (An output, not a call: a pending call would hold its
%% caller's scheduler, and the reload could wait behind it.)
a_busy_port_switches_after(Class, Busy) ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, Class),
    {1, 1, _} = control(P, <<"a">>),
    true = port_command(P, [Busy, " 0.5"]),
    receive {P, {data, <<"pending">>}} -> ok end,
    write(Dir, Mod, 2),
    ?assertEqual({ok, #{upgraded => 1, kept => 0}}, pybridge:reload(Mod)),
    %% the old instance's last step
    ?assertEqual([{1, 2, list_to_binary(Busy)}], outputs(P, 1)),
    ?assertEqual({2, 3, <<"b">>}, control(P, <<"b">>)),
    port_close(P).

%% The commit waits the app env timeout for each port's turn: a port whose coroutine is
%% still pending then is counted kept, with {pybridge, timeout}, and stays old.
a_port_not_reached_in_time_keeps_the_old_code() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, "Upgrades"),
    true = port_command(P, <<"sleep 1.5">>),
    receive {P, {data, <<"pending">>}} -> ok end,
    write(Dir, Mod, 2),
    Result = reload_waiting(Mod, 300),
    ?assertEqual({error, {code_change, [{pybridge, timeout}], #{upgraded => 0, kept => 1}}},
                 Result),
    ?assertEqual([{1, 1, <<"sleep">>}], outputs(P, 1)),
    ?assertEqual({1, 2, <<"b">>}, control(P, <<"b">>)),     % its late turn changed nothing
    Q = open(Dir, Mod, "Upgrades"),
    ?assertEqual({2, 1, <<"c">>}, control(Q, <<"c">>)),
    port_close(P),
    port_close(Q).

%% The reload comes while the port's coroutine is pending, and the port closes before the
%% coroutine ends (its turn is dropped with it): not kept, not late, just gone.
a_port_that_closes_before_its_turn_counts_for_nothing() ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, "Upgrades"),
    true = port_command(P, <<"sleep 5">>),
    receive {P, {data, <<"pending">>}} -> ok end,
    write(Dir, Mod, 2),
    spawn_link(fun() -> timer:sleep(300), port_close(P) end),
    Result = reload_waiting(Mod, 1000),
    ?assertEqual({ok, #{upgraded => 0, kept => 0}}, Result).

%% pybridge:reload(Mod) with the app env timeout (the commit's wait for each port) at Ms
reload_waiting(Mod, Ms) ->
    {ok, Timeout} = application:get_env(pybridge, timeout),
    ok = application:set_env(pybridge, timeout, Ms),
    try pybridge:reload(Mod)
    after application:set_env(pybridge, timeout, Timeout)
    end.

%% A sender streams numbered commands, with a control every 7th, to one port; a reload (to
%% version 2) runs after the 50th output, another (to 3) after the 100th, and the sender goes
%% on for 100 commands after the second returns. Every output comes once and in order,
%% every answer's count is the next one (across the switches: code_change took the count),
%% and for a class with code_change the version only grows, to 3 for the last 100 at least;
%% without, it stays 1.
under_load(Class) ->
    Dir = tmp_dir(),
    Mod = new_module(Dir),
    P = open(Dir, Mod, Class),
    Me = self(),
    Sender = spawn_link(fun() -> send(P, 1, Me, undefined, []) end),
    First = outputs(P, 50),
    write(Dir, Mod, 2),
    Result2 = pybridge:reload(Mod),
    Second = outputs(P, 50),
    write(Dir, Mod, 3),
    Result3 = pybridge:reload(Mod),
    Sender ! stop,
    {Sent, Controls} = receive {sent, Sender, N, Cs} -> {N, Cs} end,
    Outputs = First ++ Second ++ outputs(P, Sent - 100),
    ?assertEqual(lists:seq(1, Sent), [binary_to_integer(S) || {_, _, S} <- Outputs]),
    ?assertEqual([I || I <- lists:seq(1, Sent), I rem 7 =:= 0],
                 [binary_to_integer(S) || {_, _, S} <- Controls]),
    All = lists:keysort(2, Outputs ++ Controls),
    ?assertEqual(lists:seq(1, length(All)), [C || {_, C, _} <- All]),
    Versions = [V || {V, _, _} <- All],
    case lists:suffix("Upgrades", Class) of
        true ->
            ?assertEqual([{ok, #{upgraded => 1, kept => 0}} || _ <- [2, 3]], [Result2, Result3]),
            ?assertEqual(Versions, lists:sort(Versions)),
            ?assert(length([V || V <- Versions, V =:= 1]) >= 50),
            ?assert(length([V || V <- Versions, V =:= 3]) >= 100),
            ?assertEqual(3, lists:last(Versions));
        false ->
            ?assertEqual([{ok, #{upgraded => 0, kept => 1}} || _ <- [2, 3]], [Result2, Result3]),
            ?assertEqual([], [V || V <- Versions, V =/= 1])
    end,
    port_close(P).

%% Left: commands still to send after the stop (undefined: no stop yet)
send(_P, I, Test, 0, Controls) ->
    Test ! {sent, self(), I - 1, lists:reverse(Controls)};
send(P, I, Test, Left, Controls) ->
    true = port_command(P, integer_to_binary(I)),
    Controls1 = case I rem 7 of
                    0 -> [control(P, integer_to_binary(I)) | Controls];
                    _ -> Controls
                end,
    Left1 = receive stop -> 100 after 0 -> case Left of undefined -> undefined; _ -> Left - 1 end
            end,
    send(P, I + 1, Test, Left1, Controls1).

outputs(_P, 0) ->
    [];
outputs(P, N) ->
    receive {P, {data, D}} -> [parse(D) | outputs(P, N - 1)]
    after 10000 -> error({outputs_missing, N})
    end.
