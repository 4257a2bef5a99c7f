%% spin_us: the busy-poll before sleeping changes timing only. Every path answers the
%% same with it off, at its cap and over it, and a worker that has gone idle sleeps.
-module(pybridge_spin_tests).
-include_lib("eunit/include/eunit.hrl").

spin_test_() ->
    [{"spin_us " ++ integer_to_list(Us), {setup, fun() -> start(Us) end, fun stop/1,
                                           fun every_path_answers/0}}
     || Us <- [0, 10000, 1000000]]
    ++ [{"idle, spin_us " ++ integer_to_list(Us),
         {setup, fun() -> start(Us) end, fun stop/1, fun an_idle_worker_sleeps/0}}
        || Us <- [0, 50]]
    ++ [{"late answers, spin_us 10000",
         {setup, fun() -> start(10000) end, fun stop/1, fun late_answers_stop_the_spinning/0}}].

start(Us) ->
    application:stop(pybridge),
    application:load(pybridge),
    application:set_env(pybridge, spin_us, Us),
    pybridge_test_lib:start().

stop(_) ->
    application:stop(pybridge),
    application:unset_env(pybridge, spin_us).

every_path_answers() ->
    P = pybridge:open("upper:Upper", [binary]),
    [?assertEqual("cba", erlang:port_control(P, 0, <<"abc">>)) || _ <- lists:seq(1, 200)],
    [true = erlang:port_command(P, integer_to_binary(I)) || I <- lists:seq(1, 200)],
    [?assertEqual({P, {data, integer_to_binary(I)}}, receive {P, _} = M -> M after 2000 -> timeout end)
     || I <- lists:seq(1, 200)],
    ?assertEqual({count, 200}, erlang:port_call(P, 0, x)),
    port_close(P).

%% The worker spins only after serving a frame: over a quiet half second it uses
%% (almost) no CPU, where spinning on would use all of it.
an_idle_worker_sleeps() ->
    P = pybridge:open("upper:Upper", [binary]),
    [erlang:port_control(P, 0, <<"abc">>) || _ <- lists:seq(1, 2000)],
    [#{os_pid := OsPid}] = pybridge:stats(),
    T0 = cpu_ticks(OsPid),
    timer:sleep(500),
    ?assert(cpu_ticks(OsPid) - T0 < 10),        % ticks of 10 ms: under 20% of the time
    port_close(P).

%% Answers and frames that come after the spin stop it on both sides (spinning would hold a
%% CPU the peer may need): 50 controls that each take 20 ms, then 50 commands 20 ms apart.
%% Spinning on, each would cost its 10 ms spin: 500 ms of the node's CPU, then 500 ms of
%% the worker's; spinning only until it has missed twice (and once every 32 turns after)
%% costs a few spins.
late_answers_stop_the_spinning() ->
    P = pybridge:open("slow_control:SlowControl", [binary]),
    [#{os_pid := OsPid}] = pybridge:stats(),
    {_, _} = erlang:statistics(runtime),
    [?assertEqual("0", pybridge:control(P, 0, <<"20">>)) || _ <- lists:seq(1, 50)],
    {_, NodeMs} = erlang:statistics(runtime),
    ?assert(NodeMs < 250),
    W0 = cpu_ticks(OsPid),
    [begin true = erlang:port_command(P, <<"x">>), timer:sleep(20) end
     || _ <- lists:seq(1, 50)],
    ?assert(cpu_ticks(OsPid) - W0 < 25),        % ticks of 10 ms: under 250 ms
    port_close(P).

cpu_ticks(OsPid) ->
    {ok, S} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat"),
    [_, AfterComm] = binary:split(S, <<") ">>),
    Fields = binary:split(AfterComm, <<" ">>, [global]),
    %% utime and stime are fields 14 and 15 of stat; 12 and 13 after "pid (comm) "
    binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)).
