%% `make valgrind`: run under memcheck (tests/valgrind/run.sh), open and close a Python
%% driver port PB_VALGRIND_CYCLES times (default 10,000), each with a command round trip,
%% port_control, port_call and the pybridge:control/call wrappers; every 100th cycle also
%% takes the error paths (a start that raises, a driver failure). Then the application is
%% stopped so that the driver is unloaded (pb_finish runs) before the VM halts and
%% valgrind's leak check looks at what is left.
-module(pb_valgrind).
-export([main/0]).

main() ->
    N = list_to_integer(os:getenv("PB_VALGRIND_CYCLES", "10000")),
    application:load(pybridge),
    application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
    %% Why: under valgrind the VM runs 20-50 times slower than the worker expects.
    application:set_env(pybridge, timeout, 120000),
    {ok, _} = application:ensure_all_started(pybridge),
    process_flag(trap_exit, true),
    T0 = erlang:monotonic_time(millisecond),
    [begin
         cycle(I),
         I rem 1000 =:= 0 andalso
             io:format("pb_valgrind: ~w cycles, ~w s, ~w processes, ~w ports~n",
                       [I, (erlang:monotonic_time(millisecond) - T0) div 1000,
                        erlang:system_info(process_count), erlang:system_info(port_count)])
     end || I <- lists:seq(1, N)],
    ok = application:stop(pybridge),
    ok = await_unloaded(600),
    io:format("pb_valgrind: ~w cycles done, driver unloaded~n", [N]),
    halt(0).

cycle(I) ->
    P = pybridge:open("upper:Upper", [binary]),
    true = erlang:port_command(P, [<<"abc">>, binary:copy(<<"x">>, I rem 300)]),
    receive {P, {data, <<"ABC", _/binary>>}} -> ok end,
    "cba" = erlang:port_control(P, 0, <<"abc">>),
    "fed" = pybridge:control(P, 0, <<"def">>),
    {count, 1} = erlang:port_call(P, 0, x),
    {count, 1} = pybridge:call(P, 0, {I, <<"y">>}),
    true = port_close(P),
    I rem 100 =:= 0 andalso error_paths(),
    ok.

error_paths() ->
    {'EXIT', _} = (catch pybridge:open("start_fails:StartFails", [])),
    F = pybridge:open("failures:Failures", [binary]),
    true = erlang:port_command(F, <<"atom gone">>),
    receive {'EXIT', F, gone} -> ok end.

%% The supervisor that loaded the driver is gone; the unload itself is asynchronous.
await_unloaded(0) ->
    {error, still_loaded};
await_unloaded(Tries) ->
    {ok, Loaded} = erl_ddll:loaded_drivers(),
    case lists:member("pybridge", Loaded) of
        false -> ok;
        true -> timer:sleep(100), await_unloaded(Tries - 1)
    end.
