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
        || Us <- [0, 50]].

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

cpu_ticks(OsPid) ->
    {ok, S} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat"),
    [_, AfterComm] = binary:split(S, <<") ">>),
    Fields = binary:split(AfterComm, <<" ">>, [global]),
    %% utime and stime are fields 14 and 15 of stat; 12 and 13 after "pid (comm) "
    binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)).
