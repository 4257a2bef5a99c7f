%% examples/kv_store.py from Erlang: port_control on bytes, port_call on terms, and a
%% bulk load that runs in the worker's thread pool while the port goes on answering.
-module(kv_store_demo).
-export([main/0]).

-define(GET, 1).
-define(PUT, 2).
-define(DELETE, 3).

main() ->
    application:load(pybridge),
    application:set_env(pybridge, python_path, [filename:absname("examples")]),
    {ok, _} = application:ensure_all_started(pybridge),
    Port = pybridge:open("kv_store:KvStore", [binary]),

    %% port_control: the byte protocol a C driver would have
    <<>> = pybridge:control(Port, ?PUT, <<3:32, "erl", "Joe">>),
    <<"Joe">> = pybridge:control(Port, ?GET, <<"erl">>),
    {python, 'builtins.KeyError', _, _} = catch_error(fun() -> pybridge:control(Port, ?GET, <<"nope">>) end),
    badarg = catch_error(fun() -> erlang:port_control(Port, ?GET, <<"nope">>) end),
    <<1>> = pybridge:control(Port, ?DELETE, <<"erl">>),
    io:format("control: put, get, a missing key (KeyError / badarg), delete~n"),

    %% port_call: terms
    ok = pybridge:call(Port, 0, {put, <<"py">>, <<"Guido">>}),
    <<"Guido">> = pybridge:call(Port, 0, {get, <<"py">>}),
    undefined = pybridge:call(Port, 0, {get, <<"erl">>}),

    %% an async bulk load: the call returns at once, the result comes as a message
    Pairs = [{<<"k", (integer_to_binary(I))/binary>>, integer_to_binary(I * I)} || I <- lists:seq(1, 100000)],
    T0 = erlang:monotonic_time(millisecond),
    Ref = pybridge:call(Port, 0, {load, Pairs}),
    Answered = erlang:monotonic_time(millisecond) - T0,
    During = pybridge:call(Port, 0, count),
    N = receive {Port, {loaded, Ref, Loaded}} -> Loaded after 30000 -> error(load_timeout) end,
    Done = erlang:monotonic_time(millisecond) - T0,
    100001 = pybridge:call(Port, 0, count),
    [{<<"k10">>, <<"100">>}, {<<"k100">>, <<"10000">>}] =
        pybridge:call(Port, 0, {range, <<"k10">>, <<"k1000">>}),
    io:format("load of ~w pairs: the call answered in ~w ms, count was ~w meanwhile, "
              "{loaded, ~w, ~w} after ~w ms~n", [length(Pairs), Answered, During, Ref, N, Done]),
    true = pybridge:close(Port),
    io:format("kv_store demo OK~n").

catch_error(F) ->
    try F() of V -> {returned, V} catch error:Reason -> Reason end.
