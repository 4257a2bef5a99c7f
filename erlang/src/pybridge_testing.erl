%% @doc The Erlang half of the pytest plugin (pybridge.testing): a node started by pytest
%% runs main/1, which takes requests as {packet, 4} external terms on one inherited pipe,
%% carries them out with pybridge, and answers on another (stdio stays Erlang's own). It
%% owns the ports it opens, so their output comes back here and waits until Python asks.
-module(pybridge_testing).

-export([main/1]).

%% Why a process of its own: the -run that calls main/1 runs inside init's boot, and
%% starting applications needs init to have finished booting.
-spec main([string()]) -> pid().
main([In, Out]) ->
    Fds = {fd, list_to_integer(In), list_to_integer(Out)},
    spawn(fun() -> loop(open_port(Fds, [{packet, 4}, binary, eof])) end).

-spec loop(port()) -> no_return().
loop(Io) ->
    receive
        {Io, {data, Req}} ->
            Reply = try handle(binary_to_term(Req))
                    catch Class:Reason -> {error, {Class, Reason}}
                    end,
            true = erlang:port_command(Io, term_to_binary(Reply)),
            loop(Io);
        {Io, eof} ->
            halt(0)
    end.

-spec handle(term()) -> {ok, term()} | timeout.
handle({start, PythonPath}) ->
    _ = application:load(pybridge),
    ok = application:set_env(pybridge, python_path, PythonPath),
    {ok, _} = application:ensure_all_started(pybridge),
    {ok, started};
handle({open, Spec, Args, Opts}) ->
    {ok, pybridge:open(binary_to_list(Spec), Args, [binary | Opts])};
handle({command, Port, Data}) ->
    {ok, pybridge:command(Port, Data)};
handle({control, Port, Cmd, Data}) ->
    {ok, pybridge:control(Port, Cmd, Data)};
handle({call, Port, Cmd, Term}) ->
    {ok, pybridge:call(Port, Cmd, Term)};
handle({'receive', Port, Timeout}) ->
    receive {Port, Msg} -> {ok, Msg} after Timeout -> timeout end;
handle({receive_any, Timeout}) ->
    receive Msg -> {ok, Msg} after Timeout -> timeout end;
handle({close, Port}) ->
    {ok, catch pybridge:close(Port)}.
