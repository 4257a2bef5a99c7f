%% 10,000 Python exceptions in a row (each logged with its traceback, each an error term
%% for the caller) leak no memory in the worker or in the VM.
-module(pybridge_exceptions_tests).
-include_lib("eunit/include/eunit.hrl").

exceptions_test_() ->
    {setup,
     fun() ->
         {ok, _} = pybridge_test_lib:start(),
         %% the tracebacks still travel to logger; only printing them is skipped
         #{level := Level} = logger:get_primary_config(),
         ok = logger:set_primary_config(level, critical),
         Level
     end,
     fun(Level) -> logger:set_primary_config(level, Level), application:stop(pybridge) end,
     {timeout, 300, fun ten_thousand/0}}.

ten_thousand() ->
    P = pybridge:open("control_rules:ControlRules", [binary]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    raise(P, 2000),                                 % warm up caches and allocators
    Rss0 = pybridge_test_lib:rss_kib(OsPid), Mem0 = vm_bytes(),
    raise(P, 10000),
    Rss1 = pybridge_test_lib:rss_kib(OsPid), Mem1 = vm_bytes(),
    port_close(P),
    ?assert(Rss1 - Rss0 < 4096),
    ?assert(Mem1 - Mem0 < 4 * 1024 * 1024).

raise(P, N) ->
    [{'EXIT', {{python, 'builtins.RuntimeError', <<"control broke">>, _}, _}} =
         (catch pybridge:control(P, 2, <<>>)) || _ <- lists:seq(1, N)],
    ok.

vm_bytes() ->
    [erlang:garbage_collect(Pid) || Pid <- processes()],
    timer:sleep(500),
    erlang:memory(total).

