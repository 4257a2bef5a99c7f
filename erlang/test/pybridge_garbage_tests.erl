%% A worker that sends garbage (tests/drivers/garbage.py): 100,000 random frames over
%% 100 ports. Each port may fail (pybridge_protocol_error, or whatever a random but well
%% formed failure frame asks for); the VM, the worker and the other ports go on.
-module(pybridge_garbage_tests).
-include_lib("eunit/include/eunit.hrl").

garbage_test_() ->
    {setup,
     fun pybridge_test_lib:start/0,
     fun pybridge_test_lib:stop/1,
     {timeout, 300, fun random_frames/0}}.

random_frames() ->
    process_flag(trap_exit, true),
    Witness = pybridge:open("upper:Upper", [binary]),
    Outcomes = [one_port(Seed) || Seed <- lists:seq(1, 100)],
    %% the witness port, opened before all this, still works
    ?assertEqual("ih", pybridge:control(Witness, 0, <<"hi">>)),
    port_close(Witness),
    Failed = [R || {exited, R} <- Outcomes],
    ?assert(length(Failed) > 50),
    ?assert(lists:member(pybridge_protocol_error, Failed)),
    flush(),
    process_flag(trap_exit, false).

one_port(Seed) ->
    P = pybridge:open("garbage:Garbage", [binary]),
    _ = (catch erlang:port_control(P, Seed, <<"1000">>)),
    %% a round trip through the worker: its garbage for this port has been handled
    _ = (catch erlang:port_control(P, 0, <<"0">>)),
    receive
        {'EXIT', P, Reason} -> {exited, Reason}
    after 200 ->
        catch port_close(P),
        survived
    end.

flush() ->
    receive _ -> flush() after 0 -> ok end.
