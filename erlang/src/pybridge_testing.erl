%% @doc The Erlang half of the pytest plugin (pybridge.testing): a node started by pytest
%% runs main/1, which takes requests as {packet, 4} external terms on one inherited pipe,
%% carries them out with pybridge, and answers on another (stdio stays Erlang's own). It
%% owns the ports it opens, so their output comes back here and waits until Python asks.
-module(pybridge_testing).

-export([main/1]).

%% Why a process of its own: the -run that calls main/1 runs inside init's boot, and
%% starting applications needs init to have finished booting. It traps exits: the ports it
%% opens are linked to it, and a port's abnormal end must fail the test that opened it
%% (pybridge.testing), not take this process and leave pytest waiting for an answer.
-spec main([string()]) -> pid().
main([In, Out]) ->
    Fds = {fd, list_to_integer(In), list_to_integer(Out)},
    spawn(fun() ->
                  process_flag(trap_exit, true),
                  loop(open_port(Fds, [{packet, 4}, binary, eof]), [])
          end).

%% Opened: the ports opened since the current test began, whose exits are its own.
-spec loop(port(), [port()]) -> no_return().
loop(Io, Opened) ->
    receive
        {Io, {data, Req}} ->
            {Reply, Opened1} = try handle(binary_to_term(Req), Opened)
                               catch Class:Reason -> {{error, {Class, Reason}}, Opened}
                               end,
            true = erlang:port_command(Io, term_to_binary(Reply)),
            loop(Io, Opened1);
        {Io, eof} ->
            halt(0);
        {'EXIT', Io, _} ->
            halt(0)
    end.

-type reply() :: {ok, term()} | {error, term()} | {port_exited, port(), term()} | timeout.

-spec handle(term(), [port()]) -> {reply(), [port()]}.
handle({start, PythonPath}, Opened) ->
    _ = application:load(pybridge),
    ok = application:set_env(pybridge, python_path, PythonPath),
    {ok, _} = application:ensure_all_started(pybridge),
    {{ok, started}, Opened};
handle({begin_test}, _Opened) ->
    %% the exits of earlier tests' ports are no one's now
    drop_exits(),
    {{ok, ok}, []};
handle({exits}, Opened) ->
    Exits = [{P, R} || P <- Opened, R <- [exit_reason(P)], R =/= normal, R =/= alive],
    {{ok, Exits}, Opened -- [P || {P, _} <- Exits]};
handle({open, Spec, Args, Opts}, Opened) ->
    P = pybridge:open(Spec, Args, [binary | Opts]),
    {{ok, P}, [P | Opened]};
handle({command, Port, Data}, Opened) ->
    {{ok, pybridge:command(Port, Data)}, Opened};
handle({control, Port, Cmd, Data}, Opened) ->
    {{ok, pybridge:control(Port, Cmd, Data)}, Opened};
handle({call, Port, Cmd, Term}, Opened) ->
    {{ok, pybridge:call(Port, Cmd, Term)}, Opened};
handle({'receive', Port, Timeout}, Opened) ->
    %% a port's messages come before its exit, in order
    receive
        {Port, Msg} -> {{ok, Msg}, Opened};
        {'EXIT', Port, R} when R =/= normal -> {{port_exited, Port, R}, Opened -- [Port]}
    after Timeout -> {timeout, Opened}
    end;
handle({receive_any, Timeout}, Opened) ->
    receive
        {'EXIT', P, R} when is_port(P), R =/= normal -> {{port_exited, P, R}, Opened -- [P]};
        Msg when not is_tuple(Msg); tuple_size(Msg) =/= 3; element(1, Msg) =/= 'EXIT' ->
            {{ok, Msg}, Opened}
    after Timeout -> {timeout, Opened}
    end;
handle({close, Port}, Opened) ->
    {{ok, catch pybridge:close(Port)}, Opened}.

%% How a port ended: its exit signal's reason, or alive. A port that is gone has sent its
%% signal: it is waited for (bounded), so that a test that saw the port go also sees why.
-spec exit_reason(port()) -> term().
exit_reason(P) ->
    receive {'EXIT', P, R} -> R
    after 0 ->
        case erlang:port_info(P) of
            undefined -> receive {'EXIT', P, R} -> R after 1000 -> normal end;
            _ -> alive
        end
    end.

-spec drop_exits() -> ok.
drop_exits() ->
    receive {'EXIT', P, _} when is_port(P) -> drop_exits() after 0 -> ok end.
