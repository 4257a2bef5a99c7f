%% examples/line_server.py from Erlang: Python serves the TCP sockets, this process
%% answers each line (upper-cased), and a gen_tcp client talks to it.
-module(line_server_demo).
-export([main/0]).

-define(CLOSE, 1).

main() ->
    application:load(pybridge),
    application:set_env(pybridge, python_path, [filename:absname("examples")]),
    {ok, _} = application:ensure_all_started(pybridge),
    Port = pybridge:open("line_server:LineServer", [binary]),
    #{port := TcpPort} = pybridge:call(Port, 0, info),
    io:format("Python listens on 127.0.0.1:~w~n", [TcpPort]),
    Me = self(),
    spawn_link(fun() -> client(TcpPort, Me) end),
    serve(Port),
    true = pybridge:close(Port),
    io:format("line_server demo OK~n").

%% The server side: a line in, its upper-cased echo out; "bye" closes the connection.
serve(Port) ->
    receive
        {Port, {connected, Id}} ->
            io:format("  client ~w connected~n", [Id]),
            serve(Port);
        {Port, {line, Id, <<"bye">>}} ->
            true = pybridge:command(Port, <<Id:32, "bye\n">>),
            <<1>> = pybridge:control(Port, ?CLOSE, <<Id:32>>),
            serve(Port);
        {Port, {line, Id, Line}} ->
            io:format("  client ~w: ~s~n", [Id, Line]),
            true = pybridge:command(Port, [<<Id:32>>, string:uppercase(Line), $\n]),
            serve(Port);
        {Port, {closed, Id}} ->
            io:format("  client ~w closed~n", [Id]),
            receive client_done -> ok after 5000 -> error(client_stuck) end
    after 5000 ->
        error(no_client)
    end.

client(TcpPort, Server) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, TcpPort, [binary, {packet, line}, {active, false}]),
    ok = gen_tcp:send(S, "hello from gen_tcp\nsecond line\n"),
    {ok, <<"HELLO FROM GEN_TCP\n">>} = gen_tcp:recv(S, 0, 5000),
    {ok, <<"SECOND LINE\n">>} = gen_tcp:recv(S, 0, 5000),
    ok = gen_tcp:send(S, "bye\n"),
    {ok, <<"bye\n">>} = gen_tcp:recv(S, 0, 5000),
    {error, closed} = gen_tcp:recv(S, 0, 5000),
    Server ! client_done.
