%% CPU instructions the Python worker spends per port_control round trip, per pipelined
%% echo, per port_call (S4) and per term sent with output_term (S5), counted with callgrind (deterministic, unlike wall-clock time on a shared machine).
%% Run by bench/instructions.sh, which starts each worker under
%% `valgrind --tool=callgrind --instr-atstart=no` (PYBRIDGE_PYTHON) and sets PB_INSTR_OUT to
%% the worker's callgrind output file; here instrumentation is turned on once the port is
%% warm, zeroed, N operations run, and the dump's total is divided by N.
-module(pb_instructions).
-export([main/0]).

-define(CONTROLS, 2000).
-define(ECHOES, 20000).
-define(WINDOW, 1000).
-define(CALLS, 2000).
-define(TERMS, 20000).
-define(TERM, {ok, 42, <<"hello">>}).

-spec main() -> no_return().
main() ->
    application:load(pybridge),
    application:set_env(pybridge, python_path, [filename:absname("bench")]),
    application:set_env(pybridge, pool_size, 1),
    %% the worker sleeps in epoll instead of spinning: spinning adds instructions that
    %% depend on timing, not on the work done per message
    application:set_env(pybridge, spin_us, 0),
    {ok, _} = application:ensure_all_started(pybridge),
    P = pybridge:open("bench_drivers:Echo", [binary]),
    {os_pid, W} = erlang:port_info(P, os_pid),
    D = <<"12345678">>,
    controls(P, D, 500),
    echoes(P, D, 300),
    callgrind(W, "-i on"),
    controls(P, D, 300),
    Control = count(W, fun() -> controls(P, D, ?CONTROLS) end) / ?CONTROLS,
    Echo = count(W, fun() -> echoes(P, D, ?ECHOES) end) / ?ECHOES,
    calls(P, 300),
    Call = count(W, fun() -> calls(P, ?CALLS) end) / ?CALLS,
    T = pybridge:open("bench_drivers:Terms", [binary]),
    {os_pid, W} = erlang:port_info(T, os_pid),
    terms(T, 1000),
    Term = count(W, fun() -> terms(T, ?TERMS) end) / ?TERMS,
    io:format("control ~w~necho ~w~ncall ~w~nterm ~w~n",
              [round(Control), round(Echo), round(Call), round(Term)]),
    halt(0).

controls(P, D, N) ->
    [erlang:port_control(P, 0, D) || _ <- lists:seq(1, N)],
    ok.

%% S4: N port_calls of {ok, 42, <<"hello">>}, the driver's call echoing the term
calls(P, N) ->
    [?TERM = erlang:port_call(P, 0, ?TERM) || _ <- lists:seq(1, N)],
    ok.

%% S5: N 5-tuples the Terms driver sends with output_term, 1,000 per control
terms(T, N) ->
    [begin
         [] = erlang:port_control(T, 1000, <<>>),
         [receive {ok, 42, <<"hello">>, 3.5, done} -> ok end || _ <- lists:seq(1, 1000)]
     end || _ <- lists:seq(1, N div 1000)],
    ok.

%% N port_commands with up to WINDOW unanswered: the echo of S3 (docs/PERFORMANCE.md)
echoes(P, D, N) ->
    First = min(?WINDOW, N),
    [true = erlang:port_command(P, D) || _ <- lists:seq(1, First)],
    pump(P, D, N - First, N).

pump(_P, _D, _ToSend, 0) -> ok;
pump(P, D, ToSend, Left) ->
    receive {P, {data, _}} -> ok end,
    ToSend > 0 andalso erlang:port_command(P, D),
    pump(P, D, max(ToSend - 1, 0), Left - 1).

%% the worker's instructions while Run runs
count(W, Run) ->
    callgrind(W, "-z"),
    Run(),
    Before = dumps(),
    callgrind(W, "-d"),
    summary(Before, 100).

callgrind(W, What) ->
    os:cmd("callgrind_control " ++ What ++ " " ++ integer_to_list(W)).

dumps() -> filelib:wildcard(os:getenv("PB_INSTR_OUT") ++ ".*").

%% the total of the dump that appeared since Before (callgrind writes it asynchronously)
summary(Before, 0) -> error({no_callgrind_dump, Before});
summary(Before, Tries) ->
    case dumps() -- Before of
        [File] ->
            {ok, Text} = file:read_file(File),
            case re:run(Text, "^summary: ([0-9]+)", [multiline, {capture, all_but_first, list}]) of
                {match, [N]} -> list_to_integer(N);
                nomatch -> timer:sleep(100), summary(Before, Tries - 1)
            end;
        _ ->
            timer:sleep(100),
            summary(Before, Tries - 1)
    end.
