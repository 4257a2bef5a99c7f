%% Replies holding maps of more than 32 keys (HAMTs) whose keys hold atoms are written as
%% term_to_binary/1 writes them, byte for byte, as a traced port shows them: the worker
%% learns each atom's index from the driver (DRV_MK_ATOM), once, without a signal of the
%% port, making no atom the reply does not carry.
-module(pybridge_big_maps_tests).
-include_lib("eunit/include/eunit.hrl").
-export([fresh_atom_keys/0, one_request_per_new_atoms/0, tuple_and_mixed_keys/0,
         colliding_hashes/0, atoms_the_driver_cannot_name/0, pids_ports_and_refs/0]).

big_maps_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 120, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()]}.

tests() ->
    [fresh_atom_keys, one_request_per_new_atoms, tuple_and_mixed_keys, colliding_hashes,
     atoms_the_driver_cannot_name, pids_ports_and_refs].

open() ->
    pybridge:open("makes_atom_maps:MakesAtomMaps", [binary]).

%% port_call on a traced port: the reply, after asserting that the port showed exactly the
%% call's two signals and that the reply's bytes are term_to_binary's.
call(P, Cmd, Arg) ->
    erlang:trace(P, true, [send, 'receive']),
    Reply = erlang:port_call(P, Cmd, Arg),
    erlang:trace(P, false, [send, 'receive']),
    Self = self(),
    ArgBin = term_to_binary(Arg),
    [{trace, P, 'receive', {Self, {call, {Cmd, ArgBin}}}},
     {trace, P, send, {P, {call, Bin}}, Self}] = flush(P),
    ?assertEqual(term_to_binary(Reply), Bin),
    Reply.

flush(P) ->
    receive {trace, P, _, _} = M -> [M | flush(P)];
            {trace, P, _, _, _} = M -> [M | flush(P)]
    after 0 -> []
    end.

%% A prefix no atom of the node starts with yet.
fresh(Tag) ->
    unicode:characters_to_binary(io_lib:format("~ts_~p_~p", [Tag, erlang:unique_integer([positive]),
                                                             os:system_time()])).

requests(P) ->
    maps:get(atom_requests, pybridge:info(P)).

%% Maps of 33, 100 and 1000 atoms made by the driver, unknown to the node before the
%% reply: the atom table grows by exactly their number (DRV_MK_ATOM made them, decoding
%% the reply found them). The same from a port's own thread (port-level locking) and from
%% an async def call.
fresh_atom_keys() ->
    [fresh_atom_keys(Class) || Class <- ["MakesAtomMaps", "MakesAtomMapsOnItsThread",
                                         "MakesAtomMapsAsync"]].

fresh_atom_keys(Class) ->
    P = pybridge:open("makes_atom_maps:" ++ Class, [binary]),
    [begin
         Prefix = fresh("fresh"),
         Count = erlang:system_info(atom_count),
         Map = call(P, 0, {Prefix, N}),
         ?assertEqual(Count + N, erlang:system_info(atom_count)),
         ?assertEqual(maps:from_list([{binary_to_atom(<<Prefix/binary, "_",
                                                        (integer_to_binary(I))/binary>>), I}
                                      || I <- lists:seq(0, N - 1)]), Map)
     end || N <- [33, 100, 1000]],
    port_close(P).

%% One request for a map of 100 new atoms, none for the same map again, nor for maps
%% that need none: up to 32 keys, or keys without atoms.
one_request_per_new_atoms() ->
    P = open(),
    Prefix = fresh("once"),
    ?assertEqual(0, requests(P)),
    _ = call(P, 0, {Prefix, 100}),
    ?assertEqual(1, requests(P)),
    _ = call(P, 0, {Prefix, 100}),
    _ = call(P, 0, {Prefix, 50}),
    _ = call(P, 0, {fresh("small"), 32}),
    _ = call(P, 1, maps:from_list([{I, a} || I <- lists:seq(1, 100)])),
    _ = call(P, 1, maps:from_list([{<<I>>, {b, c}} || I <- lists:seq(1, 100)])),
    ?assertEqual(1, requests(P)),
    %% atoms the node has (the argument carries them) but the worker has not learned yet
    Known = [binary_to_atom(fresh("known")) || _ <- lists:seq(1, 100)],
    _ = call(P, 1, maps:from_list([{A, 1} || A <- Known])),
    ?assertEqual(2, requests(P)),
    _ = call(P, 1, #{big => maps:from_list([{A, 2} || A <- Known])}),
    ?assertEqual(2, requests(P)),
    port_close(P).

%% Keys that hold atoms in tuples and lists, beside integers, binaries and floats; Latin-1
%% atoms beyond ASCII; big maps with atom keys nested as values and as keys.
tuple_and_mixed_keys() ->
    P = open(),
    Atoms = [binary_to_atom(fresh(T)) || T <- ["t", "é", "ü"], _ <- lists:seq(1, 20)],
    Tuples = maps:from_list([{{A, I}, I} || {A, I} <- lists:zip(Atoms, lists:seq(1, 60))]),
    Mixed = maps:from_list([{K, K} || K <- lists:sublist(Atoms, 20)
                                          ++ lists:seq(100, 119) ++ [<<I:16>> || I <- lists:seq(1, 20)]
                                          ++ [{I * 1.5, [hd(Atoms)]} || I <- lists:seq(1, 10)]
                                          ++ [true, false, undefined, [], {}]]),
    Nested = #{outer => Tuples, Tuples => Mixed},
    [?assertEqual(T, call(P, 1, T)) || T <- [Tuples, Mixed, Nested, [Mixed, {Tuples}]]],
    port_close(P).

%% Two keys whose 32-bit hashes are equal sit 8 levels deep in the HAMT, ordered by their
%% rehash: twenty such pairs (each in the wrong order half the time if the worker got the
%% rehash wrong), found among {Atom, I} by the node's own internal hash.
colliding_hashes() ->
    erts_debug:set_internal_state(available_internal_state, true),
    A = binary_to_atom(fresh("collide")),
    Pairs = collisions(A, 0, #{}, 20),
    [?assertEqual(erts_debug:get_internal_state({internal_hash, K1}),
                  erts_debug:get_internal_state({internal_hash, K2})) || {K1, K2} <- Pairs],
    P = open(),
    Map = maps:from_list([{K, I} || {I, {K1, K2}} <- lists:enumerate(Pairs), K <- [K1, K2]]
                         ++ [{{A, -I}, I} || I <- lists:seq(1, 40)]),
    ?assertEqual(Map, call(P, 1, Map)),
    port_close(P).

collisions(_, _, _, 0) ->
    [];
collisions(A, I, Seen, N) when I < 10000000 ->
    K = {A, I},
    H = erts_debug:get_internal_state({internal_hash, K}),
    case Seen of
        #{H := Other} -> [{Other, K} | collisions(A, I + 1, Seen, N - 1)];
        #{} -> collisions(A, I + 1, Seen#{H => K}, N)
    end.

%% An atom driver_mk_atom cannot name (beyond Latin-1): the map keeps the worker's order,
%% the reply is the same term all the same, and nothing is asked.
atoms_the_driver_cannot_name() ->
    P = open(),
    Map = maps:from_list([{binary_to_atom(fresh("кл")), I} || I <- lists:seq(1, 40)]),
    erlang:trace(P, true, [send]),
    ?assertEqual(Map, erlang:port_call(P, 1, Map)),
    erlang:trace(P, false, [send]),
    [{trace, P, send, {P, {call, Bin}}, _}] = flush(P),
    ?assertEqual(Map, binary_to_term(Bin)),
    ?assertEqual(0, requests(P)),
    port_close(P).

%% Keys that are this node's pids, ports and references: their hashes are those of their
%% in-VM words, which the worker lays out from the node's process and port limits (on its
%% command line) and the node's name and creation (from the pids it was named).
pids_ports_and_refs() ->
    P = open(),
    Pids = [self() | [spawn(fun() -> ok end) || _ <- lists:seq(1, 40)]],
    Ports = [list_to_port("#Port<0." ++ integer_to_list(I * 211) ++ ">") || I <- lists:seq(0, 40)],
    Refs = [make_ref() || _ <- lists:seq(1, 40)],
    [?assertEqual(T, call(P, 1, T))
     || T <- [maps:from_list([{K, I} || {I, K} <- lists:enumerate(Keys)])
              || Keys <- [Pids, Ports, Refs, [{Pid, a} || Pid <- Pids]]]],
    port_close(P).
