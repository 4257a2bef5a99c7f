%% No memory leak from the driver: ERTS accounts every driver_alloc in its driver_alloc
%% allocator, so thousands of open/use/close cycles (clean closes, failed opens, driver
%% failures) must leave its live blocks where they were.
-module(pybridge_leak_tests).
-include_lib("eunit/include/eunit.hrl").

leak_test_() ->
    {setup,
     fun pybridge_test_lib:start/0,
     fun pybridge_test_lib:stop/1,
     {timeout, 300, fun open_close_cycles/0}}.

open_close_cycles() ->
    process_flag(trap_exit, true),
    cycles(200),                                   % warm up every code path once
    Before = driver_alloc_bytes(),
    cycles(3000),
    After = driver_alloc_bytes(),
    process_flag(trap_exit, false),
    %% 3000 cycles: even 16 bytes lost per cycle would be 48 KB
    ?assert(After - Before < 16 * 1024).

cycles(N) ->
    [cycle(I) || I <- lists:seq(1, N)],
    flush().

cycle(I) ->
    P = pybridge:open("upper:Upper", [binary]),
    true = erlang:port_command(P, [<<"abc">>, binary:copy(<<"x">>, I rem 300)]),
    receive {P, {data, _}} -> ok end,
    "cba" = erlang:port_control(P, 0, <<"abc">>),
    {count, 1} = erlang:port_call(P, 0, x),
    true = port_close(P),
    {'EXIT', _} = (catch pybridge:open("start_fails:StartFails", [])),
    F = pybridge:open("failures:Failures", [binary]),
    true = erlang:port_command(F, <<"atom gone">>),
    receive {'EXIT', F, gone} -> ok end.

driver_alloc_bytes() ->
    erlang:garbage_collect(),
    timer:sleep(200),
    lists:sum([Cur || {instance, _, Kinds} <- erlang:system_info({allocator_sizes, driver_alloc}),
                      {_, Props} <- Kinds, is_list(Props),
                      {blocks, Blocks} <- Props,
                      {_, Sizes} <- Blocks,
                      {size, Cur, _, _} <- Sizes]).

flush() ->
    receive _ -> flush() after 0 -> ok end.
