%% The examples/ drivers do real work: checked here against Erlang's own libraries.
-module(pybridge_examples_tests).
-include_lib("eunit/include/eunit.hrl").

compressor_test_() ->
    {setup,
     fun() -> application:load(pybridge), {ok, _} = application:ensure_all_started(pybridge) end,
     fun(_) -> application:stop(pybridge) end,
     fun() ->
         Port = pybridge:open("compressor:Compressor", "6",
                              [binary, {python_path, [filename:absname("examples")]}]),
         Text = iolist_to_binary([integer_to_list(I) || I <- lists:seq(1, 50000)]),
         [true = pybridge:command(Port, binary:part(Text, Off, min(4096, byte_size(Text) - Off)))
          || Off <- lists:seq(0, byte_size(Text) - 1, 4096)],
         %% FLUSH is a sync point: everything sent so far decompresses from what came back
         Synced = pybridge:control(Port, 1, <<>>),
         Tail = pybridge:control(Port, 2, <<>>),
         Streamed = collect(Port),
         Compressed = iolist_to_binary([Streamed, Synced, Tail]),
         ?assertEqual(Text, zlib:uncompress(Compressed)),
         ?assertEqual(#{bytes_in => byte_size(Text), bytes_out => byte_size(Compressed)},
                      pybridge:call(Port, 0, stats)),
         ?assertError(badarg, pybridge:control(Port, 7, <<>>)),
         pybridge:close(Port)
     end}.

collect(Port) ->
    receive {Port, {data, D}} -> [D | collect(Port)] after 0 -> [] end.
