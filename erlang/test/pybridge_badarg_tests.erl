%% Wrong types from Erlang, to every pybridge function and to the plain port BIFs on a
%% pybridge port: badarg or a documented error, never a crash or a hang.
-module(pybridge_badarg_tests).
-include_lib("eunit/include/eunit.hrl").

badarg_test_() ->
    {setup,
     fun() ->
         {ok, _} = pybridge_test_lib:start(),
         pybridge:open("echo_term:EchoTerm", [binary])
     end,
     fun(P) -> catch port_close(P), application:stop(pybridge) end,
     fun(P) -> {timeout, 60, fun() -> wrong_types(P) end} end}.

wrong_types(P) ->
    Junk = [-1, 1.5, foo, "str", <<"bin">>, {a}, [1 | 2], #{}, self(), make_ref(), fun() -> ok end],
    [?assertError(badarg, pybridge:open(J, [])) || J <- Junk, not is_list(J), not is_binary(J),
                                                    not is_atom(J)],
    ?assertError(badarg, pybridge:open("echo_term:EchoTerm", not_a_list)),
    ?assertError(badarg, pybridge:open("echo_term:EchoTerm", [{timeout, -5}])),
    ?assertError(badarg, pybridge:open("echo_term:EchoTerm", [not_an_option])),
    ?assertError(badarg, pybridge:open("echo_term:EchoTerm", {args}, [])),
    %% open's own options: types and ranges checked, never function_clause nor truncated
    [?assertError(badarg, pybridge:open("echo_term:EchoTerm", [Opt]))
     || Opt <- [{python_path, "notalist"}, {python_path, [123]}, {python_path, dir},
                {python_path, ["tests" | "drivers"]}, {python_path, [""]}, {python_path, [[$a, 0]]},
                {timeout, 1 bsl 40}, {timeout, 16#100000000}, {timeout, -1}, {timeout, 1.5},
                {timeout, infinity}]],
    ?assertError(badarg, pybridge:open("echo_term:EchoTerm", [binary | improper])),
    ?assertError(badarg, pybridge:open("echo_term:EchoTerm", "", not_a_list)),
    [?assertError(badarg, pybridge:open("echo_term:EchoTerm", J, []))
     || J <- [[1 | 2], [16#110000], 1.5, foo, [-1], #{}]],
    [?assertError(badarg, pybridge:command(J, <<"x">>)) || J <- Junk],
    [?assertError(badarg, pybridge:command(P, J)) || J <- Junk, not is_binary(J), not is_list(J)],
    ?assertError(badarg, pybridge:command(P, [1 | 2])),
    ?assertError(badarg, pybridge:command(P, <<"x">>, [bogus])),
    [?assertError(badarg, pybridge:control(P, J, <<>>)) || J <- Junk],
    [?assertError(badarg, pybridge:control(P, 0, J)) || J <- Junk, not is_binary(J), J =/= "str"],
    [?assertError(badarg, pybridge:control(J, 0, <<>>)) || J <- Junk],
    [?assertError(badarg, pybridge:call(P, J, x)) || J <- Junk],
    [?assertError(badarg, pybridge:call(J, 0, x)) || J <- Junk],
    [?assertError(badarg, erlang:port_control(P, J, <<>>)) || J <- Junk],
    [?assertError(badarg, erlang:port_control(P, 0, J)) || J <- Junk, not is_binary(J), J =/= "str"],
    [?assertError(badarg, erlang:port_call(P, J, x)) || J <- Junk],
    %% the reserved commands answer {error, Reason} by contract (docs/PROTOCOL.md), at once
    %% or, past the driver's spin, as a message
    ?assertEqual({error, badarg}, reserved(P, 16#FFFFFF01, not_a_tuple)),
    ?assertEqual({error, badarg}, reserved(P, 16#FFFFFF02, {only_two, items})),
    ?assertError(badarg, pybridge:close(foo)),
    ?assertError(badarg, pybridge:load_driver(42, "echo_term:EchoTerm")),
    ?assertEqual({error, not_loaded}, pybridge:unload_driver("never_loaded")),
    %% after all that the port answers as before
    ?assertEqual(still_here, pybridge:call(P, 0, still_here)).

reserved(P, Cmd, Arg) ->
    case erlang:port_call(P, Cmd, Arg) of
        {pybridge_pending, Id, Ms} ->
            receive {pybridge_reply, P, Id, Answer} -> Answer after Ms -> pending end;
        Answer ->
            Answer
    end.
