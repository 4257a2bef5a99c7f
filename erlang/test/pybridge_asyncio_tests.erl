%% Coroutine callbacks seen from Erlang: while a port's coroutine awaits, the control of
%% another port of the same worker is answered, and exceptions in coroutines are logged as
%% in sync callbacks. The pytest suite tests/python/test_asyncio.py covers the rest.
-module(pybridge_asyncio_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

asyncio_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}}
      || T <- [waiting_port_does_not_hold_up_another, exception_in_async_output_is_logged]]}.

%% The waiting coroutine is an output's: a control that awaits keeps its caller's scheduler
%% waiting (as a C driver's control does), and that can delay any process on it.
waiting_port_does_not_hold_up_another() ->
    Slow = pybridge:open("async_def_ordering:Ordering", [binary]),
    Other = pybridge:open("async_def_ordering:Ordering", [binary]),
    ?assertEqual(erlang:port_info(Slow, os_pid), erlang:port_info(Other, os_pid)),
    true = erlang:port_command(Slow, <<"sleep 500">>),
    ?assertEqual("x", pybridge:control(Other, 1, <<"x">>)),
    ?assertEqual(7, pybridge:call(Other, 2, 7)),
    Got = [receive {E, A} -> {E, A} after 2000 -> timeout end || _ <- [1, 2, 3]],
    ?assertEqual([{control, 1}, {call, 2}, {output, <<"sleep 500">>}], Got),
    port_close(Slow),
    port_close(Other).

open() -> pybridge:open("async_def_callbacks:AsyncCallbacks", [binary]).

exception_in_async_output_is_logged() ->
    ok = logger:add_handler(pb_aio_capture, pybridge_log_capture, #{config => #{to => self()},
                                                                     filter_default => log}),
    try
        P = open(),
        true = erlang:port_command(P, <<"raise">>),
        true = erlang:port_command(P, <<"after">>),
        ?assertEqual(<<"AFTER">>, receive {P, {data, D}} -> D after 2000 -> timeout end),
        {Level, Msg, Meta} = receive {logged, L, M, Md} -> {L, M, Md}
                             after 2000 -> error(no_log)
                             end,
        ?assertEqual(error, Level),
        ?assertNotEqual(nomatch, string:find(Msg, "RuntimeError in async_def_callbacks:"
                                                  "AsyncCallbacks.output: async output broke")),
        ?assertNotEqual(nomatch, string:find(Msg, "Traceback")),
        ?assertEqual(<<"async_def_callbacks:AsyncCallbacks">>, maps:get(driver, Meta)),
        port_close(P)
    after
        logger:remove_handler(pb_aio_capture)
    end.
