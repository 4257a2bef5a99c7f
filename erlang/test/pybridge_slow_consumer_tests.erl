%% A producer pushes 2 GiB through port_command to a slower Python driver: senders are
%% suspended by busy port, memory of the VM and the worker grows by less than 256 MiB,
%% and every byte arrives (count and CRC-32).
-module(pybridge_slow_consumer_tests).
-include_lib("eunit/include/eunit.hrl").

slow_consumer_test_() ->
    {setup,
     fun pybridge_test_lib:start/0,
     fun pybridge_test_lib:stop/1,
     {timeout, 600, fun two_gib/0}}.

two_gib() ->
    P = pybridge:open("slow_consumer:SlowConsumer", [binary]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    Chunk = crypto_free_chunk(1 bsl 20),
    N = 2048,
    Self = self(),
    Watcher = spawn_link(fun() -> watch(Self, OsPid, 0, 0) end),
    Mem0 = erlang:memory(total), Rss0 = pybridge_test_lib:rss_kib(OsPid),
    Crc = lists:foldl(fun(_, C) -> true = erlang:port_command(P, Chunk), erlang:crc32(C, Chunk) end,
                      0, lists:seq(1, N)),
    %% a call after the commands is served after all of them
    {Count, PyCrc} = pybridge:call(P, 0, done),
    Watcher ! {stop, Self},
    {PeakVm, PeakRss} = receive {peak, V, R} -> {V, R} end,
    port_close(P),
    ?assertEqual(N bsl 20, Count),
    ?assertEqual(Crc, PyCrc),
    ?assert((PeakVm - Mem0) + (PeakRss - Rss0) * 1024 < 256 bsl 20).

%% Samples the VM's memory and the worker's RSS every 20 ms; reports the peaks.
watch(To, OsPid, Vm, Rss) ->
    receive {stop, To} -> To ! {peak, Vm, Rss}
    after 20 -> watch(To, OsPid, max(Vm, erlang:memory(total)), max(Rss, pybridge_test_lib:rss_kib(OsPid)))
    end.

crypto_free_chunk(N) ->
    << <<(I rem 251)>> || I <- lists:seq(1, N) >>.

