%% Python calls Erlang (Port.call_erlang, tests/drivers/calls_erlang.py): results of every
%% type, exceptions of each class, timeouts (the Erlang side killed, the port unharmed),
%% large arguments and results (pieces over ctl), calls from start, output, a thread, an
%% async_ job, the timeout callback, coroutines and port-level locking, the port's traces
%% (the call is not the port's), and 10,000 calls in a row that leave no Erlang process
%% behind. Calls inside a blocking control or call: pybridge_erl_call_turn_tests.
-module(pybridge_erl_call_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

erl_call_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 120, {atom_to_list(T), fun ?MODULE:T/0}}
      || T <- [results_of_every_type, exceptions_of_each_class, bad_requests,
               timeout_kills_the_call,
               large_arguments_and_results, from_start_output_thread_job_and_timer,
               from_coroutines, under_port_level_locking, nothing_in_the_port_s_traces,
               ten_thousand_calls_leave_no_process]]}.

%% -- called from Python --
value(integer) -> 42;
value(negative) -> -7;
value(bignum) -> 1 bsl 200;
value(float) -> 2.5;
value(atom) -> hello;
value(true) -> true;
value(undefined) -> undefined;
value(binary) -> <<"bytes", 0, 255>>;
value(bitstring) -> <<5:3>>;
value(string) -> "chars";
value(nil) -> [];
value(list) -> [1, two, <<"three">>, [4]];
value(improper) -> [1, 2 | tail];
value(tuple) -> {a, 1, {}};
value(map) -> #{a => 1, <<"k">> => [v], {t} => #{}};
value(pid) -> whereis(init);
value(port) -> hd(erlang:ports());
value(ref) -> persistent_term:get(?MODULE);
value(export_fun) -> fun lists:reverse/1.

echo(X) -> X.

raise(Class, Reason) -> erlang:raise(Class, Reason, []).

raise_here(error) -> error(my_error);
raise_here(exit) -> exit(my_exit);
raise_here(throw) -> throw(my_throw).

sleep_registered(Name, Ms) ->
    register(Name, self()),
    timer:sleep(Ms),
    done.

open() -> pybridge:open("calls_erlang:CallsErlang", [binary]).

%% The outcome of Request made from the callback or thread How names (calls_erlang.py).
run(P, How, Request) ->
    ok = pybridge:call(P, 1, Request),
    true = pybridge:command(P, How),
    Tag = list_to_atom(hd(string:lexemes(How, " "))),
    receive {Tag, Outcome} -> Outcome after 10000 -> no_answer end.

call(P, M, F, A) -> run(P, "out", {M, F, A}).

results_of_every_type() ->
    persistent_term:put(?MODULE, make_ref()),
    P = open(),
    Kinds = [integer, negative, bignum, float, atom, true, undefined, binary, bitstring, string,
             nil, list, improper, tuple, map, pid, port, ref, export_fun],
    [?assertEqual({Kind, {ok, value(Kind)}}, {Kind, call(P, ?MODULE, value, [Kind])})
     || Kind <- Kinds],
    %% args go the other way: every term Python got back to Erlang unchanged
    [?assertEqual({Kind, {ok, value(Kind)}}, {Kind, call(P, ?MODULE, echo, [value(Kind)])})
     || Kind <- Kinds],
    pybridge:close(P).

exceptions_of_each_class() ->
    P = open(),
    ?assertEqual({erlang_error, error, my_error, true}, call(P, ?MODULE, raise_here, [error])),
    ?assertEqual({erlang_error, exit, my_exit, true}, call(P, ?MODULE, raise_here, [exit])),
    ?assertEqual({erlang_error, throw, my_throw, true}, call(P, ?MODULE, raise_here, [throw])),
    ?assertEqual({erlang_error, error, {badarith, x}, true},
                 call(P, ?MODULE, raise, [error, {badarith, x}])),
    ?assertEqual({erlang_error, error, undef, true}, call(P, no_such_module, f, [])),
    ?assertEqual({erlang_error, error, badarg, true}, call(P, erlang, atom_to_list, [1])),
    pybridge:close(P).

%% Arguments that are not an atom, an atom and a list raise TypeError before anything is
%% sent; the port goes on.
bad_requests() ->
    P = open(),
    ?assertMatch({'EXIT', {{python, 'builtins.TypeError', _, _}, _}},
                 catch pybridge:call(P, 2, {lists, reverse, 1})),
    ?assertMatch({'EXIT', {{python, 'builtins.TypeError', _, _}, _}},
                 catch pybridge:call(P, 2, {1, reverse, [[]]})),
    ?assertMatch({'EXIT', {{python, 'builtins.ValueError', _, _}, _}},
                 catch pybridge:call(P, 2, {lists, reverse, [[]], -1})),
    ?assertEqual({ok, [3, 2, 1]}, call(P, lists, reverse, [[1, 2, 3]])),
    pybridge:close(P).

timeout_kills_the_call() ->
    P = open(),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual(timeout, run(P, "out", {?MODULE, sleep_registered,
                                         [pb_erl_call_sleeper, 10000], 0.3})),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 3000),
    %% killed at its timeout, not left running
    ?assertEqual(undefined, wait_unregistered(pb_erl_call_sleeper, 50)),
    %% the port and the worker go on
    ?assertEqual({ok, 6}, call(P, erlang, '+', [1, 5])),
    pybridge:close(P).

wait_unregistered(_Name, 0) -> still_registered;
wait_unregistered(Name, N) ->
    case whereis(Name) of
        undefined -> undefined;
        _ -> timer:sleep(20), wait_unregistered(Name, N - 1)
    end.

large_arguments_and_results() ->
    P = open(),
    Big = binary:copy(<<"0123456789abcdef">>, 1 bsl 18),      % 4 MiB: many ctl messages
    ?assertEqual({ok, byte_size(Big)}, call(P, erlang, byte_size, [Big])),
    ?assertEqual({ok, Big}, call(P, ?MODULE, echo, [Big])),
    %% a thread's call while the loop thread naps: the answer's pieces wait in the manager
    %% port's queue (the ctl socket is full) and arrive whole, in order
    ok = pybridge:call(P, 1, {?MODULE, echo, [Big]}),
    true = pybridge:command(P, "thread"),
    true = pybridge:command(P, "nap 1000"),
    ?assertEqual({thread, {ok, Big}}, receive {thread, _} = M -> M after 10000 -> none end),
    Long = lists:seq(1, 100000),
    ?assertEqual({ok, lists:reverse(Long)}, call(P, lists, reverse, [Long])),
    pybridge:close(P).

from_start_output_thread_job_and_timer() ->
    %% start too: open_port's caller waits for it, no scheduler does
    S = pybridge:open("calls_erlang:CallsErlang", "erlang node", [binary]),
    ?assertEqual({start, {ok, node()}}, receive {start, _} = M -> M after 5000 -> none end),
    pybridge:close(S),
    P = open(),
    [?assertEqual({How, {ok, node()}}, {How, run(P, How, {erlang, node, []})})
     || How <- ["out", "thread", "job", "timer"]],
    [?assertEqual({How, {erlang_error, throw, my_throw, true}},
                  {How, run(P, How, {?MODULE, raise_here, [throw]})})
     || How <- ["out", "thread", "job", "timer"]],
    [?assertEqual({How, timeout}, {How, run(P, How, {timer, sleep, [3000], 0.2})})
     || How <- ["out", "thread", "job", "timer"]],
    pybridge:close(P).

from_coroutines() ->
    P = pybridge:open("calls_erlang:AsyncCallsErlang", [binary]),
    ?assertEqual({ok, [c, b, a]}, run(P, "coro", {lists, reverse, [[a, b, c]]})),
    ?assertEqual({erlang_error, throw, my_throw, true},
                 run(P, "coro", {?MODULE, raise_here, [throw]})),
    ?assertEqual(timeout, run(P, "coro", {timer, sleep, [3000], 0.2})),
    pybridge:close(P).

under_port_level_locking() ->
    %% the port's own thread calls, and a thread of the driver's
    P = pybridge:open("port_level:calls_erlang__CallsErlang", [binary]),
    [?assertEqual({How, {ok, node()}}, {How, run(P, How, {erlang, node, []})})
     || How <- ["out", "thread", "job", "timer"]],
    pybridge:close(P).

%% The call goes through the worker's manager port, not the user's: the port's trace shows
%% the command it got and the term it sent, nothing of the call.
nothing_in_the_port_s_traces() ->
    P = open(),
    ok = pybridge:call(P, 1, {erlang, node, []}),
    Self = self(),
    Tracer = spawn(fun Loop() ->
                       receive
                           {done, From} -> From ! done;
                           M -> Self ! {traced, M}, Loop()
                       end
                   end),
    erlang:trace(P, true, [send, 'receive', {tracer, Tracer}]),
    true = pybridge:command(P, "out"),
    ?assertEqual({out, {ok, node()}}, receive {out, _} = M -> M after 5000 -> none end),
    erlang:trace(P, false, [send, 'receive']),
    %% every trace message is in the tracer's mailbox before {done, _}
    Ref = erlang:trace_delivered(all),
    receive {trace_delivered, all, Ref} -> ok end,
    Tracer ! {done, Self},
    receive done -> ok end,
    ?assertMatch([{trace, P, 'receive', {_, {command, _}}},
                  {trace, P, send, {out, {ok, _}}, Self}], traced()),
    pybridge:close(P).

traced() ->
    receive {traced, M} -> [M | traced()] after 0 -> [] end.

ten_thousand_calls_leave_no_process() ->
    P = open(),
    ?assertEqual({ok, node()}, call(P, erlang, node, [])),     % the worker is warm
    Before = erlang:system_info(process_count),
    ?assertEqual({ok, 3}, run(P, "many 10000", {erlang, length, [[a, b, c]]})),
    ?assertEqual(Before, settle(Before, 50)),
    pybridge:close(P).

%% the last guards may still be exiting when the answer is in
settle(_Want, 0) -> erlang:system_info(process_count);
settle(Want, N) ->
    case erlang:system_info(process_count) of
        Want -> Want;
        _ -> timer:sleep(20), settle(Want, N - 1)
    end.
