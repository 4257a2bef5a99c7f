%% output() takes any buffer-protocol object, and a large contiguous one reaches the port's
%% shared memory without an intermediate copy in Python (issue 14, "Buffers").
-module(pybridge_buffer_tests).
-include_lib("eunit/include/eunit.hrl").

-define(MIB, 1048576).

buffer_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [fun every_kind_of_buffer/0, {timeout, 60, fun a_large_buffer_is_not_copied/0}]}.

every_kind_of_buffer() ->
    P = pybridge:open("buffer_outputs:BufferOutputs", [binary]),
    [begin
         Data = binary:copy(<<"abcdefgh">>, Size div 8),
         ?assertEqual("sent", pybridge:control(P, 0, Data)),
         [?assertEqual({data, Data}, got(P)) || _ <- lists:seq(1, 4)],
         ?assertEqual({data, <<1.5/float-little, -2.25/float-little>>}, got(P)),
         ?assertEqual({data, << <<B>> || <<B, _>> <= Data >>}, got(P)),
         ?assertEqual("sent", pybridge:control(P, 3, Data)),
         ?assertEqual({data, Data}, got(P)),
         ?assertEqual({data, [$h, Data | Data]}, got(P)),
         ?assertEqual({data, [$h | Data]}, got(P)),
         ?assertEqual({data, [$h | binary:part(Data, 1, 3)]}, got(P))
     end || Size <- [8, 1024, 256 * 1024]],
    port_close(P).

%% 4 MiB through the ring: Python's peak allocation during output() stays far below it
%% (bytes(data) made one of 4 MiB).
a_large_buffer_is_not_copied() ->
    P = pybridge:open("buffer_outputs:BufferOutputs", [binary]),
    N = integer_to_list(4 * ?MIB),
    ?assertEqual("sent", pybridge:control(P, 1, N)),
    ?assertEqual(4 * ?MIB, byte_size(element(2, got(P)))),
    Peaks = [begin
                 Peak = list_to_integer(pybridge:control(P, 2, N)),
                 ?assertEqual(4 * ?MIB, byte_size(element(2, got(P)))),
                 Peak
             end || _ <- lists:seq(1, 3)],
    ?assert(lists:min(Peaks) < ?MIB),
    port_close(P).

got(P) ->
    receive {P, Msg} -> Msg after 10000 -> timeout end.
