%% make demo: a real node opens the example compressor written in Python and shows
%% what crosses the port.
-module(demo).
-export([main/0]).

main() ->
    application:load(pybridge),
    application:set_env(pybridge, python_path, [filename:absname("examples")]),
    {ok, _} = application:ensure_all_started(pybridge),
    Port = pybridge:open("compressor:Compressor", "9", [binary]),
    io:format("opened ~p: compressor:Compressor (Python worker os pid ~p)~n",
              [Port, element(2, erlang:port_info(Port, os_pid))]),
    Text = iolist_to_binary([element(2, file:read_file(F))
                             || F <- filelib:wildcard("c_src/*.c") ++ filelib:wildcard("erlang/src/*.erl")]),
    Chunks = [binary:part(Text, Off, min(8192, byte_size(Text) - Off))
              || Off <- lists:seq(0, byte_size(Text) - 1, 8192)],
    [begin
         true = pybridge:command(Port, C),
         io:format("  -> port_command  ~6w bytes~n", [byte_size(C)])
     end || C <- Chunks],
    #{queued := Queued} = pybridge:call(Port, 1, queue),
    {queue_size, Size} = erlang:port_info(Port, queue_size),
    io:format("  -> port_call QUEUE~n  <- ~w bytes wait in the port's driver queue (port_info says ~w);"
              " a timer compresses them 64 KiB at a time~n", [Queued, Size]),
    Flushed = pybridge:control(Port, 2, <<>>),
    io:format("  -> port_control FINISH~n  <- ~w bytes (end of stream)~n", [byte_size(Flushed)]),
    Streamed = collect(Port, []),
    [io:format("  <- {data, ~w bytes}~n", [byte_size(B)]) || B <- Streamed],
    Compressed = iolist_to_binary([Streamed, Flushed]),
    Stats = pybridge:call(Port, 0, stats),
    io:format("  -> port_call STATS~n  <- ~p~n", [Stats]),
    Text = zlib:uncompress(Compressed),
    io:format("zlib:uncompress/1 in Erlang gives back all ~w bytes (ratio ~.2f)~n",
              [byte_size(Text), byte_size(Compressed) / byte_size(Text)]),
    true = pybridge:close(Port),
    io:format("closed; demo OK~n").

collect(Port, Acc) ->
    receive {Port, {data, D}} -> collect(Port, [D | Acc])
    after 0 -> lists:reverse(Acc)
    end.
