%% Issue 13's defects, each against the real node, driver and worker: where a Python
%% driver still differed from a C driver as Erlang sees it.
-module(pybridge_exact_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

exact_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()]}.

tests() ->
    [pids_in_blocking_callbacks, bridge_not_in_port_traces, replies_as_term_to_binary].

%% What F() gives in a new process.
in_other_process(F) ->
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() -> Self ! {self(), F()} end),
    receive {Pid, R} -> receive {'DOWN', Ref, _, _, _} -> {Pid, R} end
    after 5000 -> error(no_answer)
    end.

%% A driver keeps callers' pids and looks each new caller up among them inside a blocking
%% control, with plain port_control: nothing but the port's own signals carries the pid.
pids_in_blocking_callbacks() ->
    P = open_port({spawn_driver, "pybridge remembers_callers:RemembersCallers"}, [binary]),
    Self = self(),
    ?assertEqual("no", erlang:port_control(P, 1, <<>>)),
    ?assertEqual([], erlang:port_control(P, 0, <<>>)),
    ?assertEqual("yes", erlang:port_control(P, 1, <<>>)),
    {Other, "no"} = in_other_process(fun() -> erlang:port_control(P, 1, <<>>) end),
    {Other2, []} = in_other_process(fun() -> erlang:port_control(P, 0, <<>>) end),
    ?assertEqual("yes", erlang:port_control(P, 1, <<>>)),
    %% a pid inside a term equals the caller's pid, and hashes alike
    ?assertEqual({true, true, true, true}, erlang:port_call(P, 0, Self)),
    ?assertMatch({false, false, false, _}, erlang:port_call(P, 0, Other)),
    ?assertMatch({false, false, true, _}, erlang:port_call(P, 0, Other2)),
    %% the pids sent back are those very pids
    ?assertEqual([Self, Other2], erlang:port_call(P, 1, x)),
    port_close(P).

%% A traced pybridge port shows only what a C driver's port would: its open, its link,
%% what it is sent and what it sends its callers, never the bridge's own bookkeeping.
bridge_not_in_port_traces() ->
    Self = self(),
    erlang:trace(new_ports, true, [send, 'receive', ports]),
    P = open_port({spawn_driver, "pybridge remembers_callers:RemembersCallers"}, [binary]),
    erlang:trace(new_ports, false, [send, 'receive', ports]),
    [] = erlang:port_control(P, 0, <<>>),
    {Other, "no"} = in_other_process(fun() -> erlang:port_control(P, 1, <<>>) end),
    [Self] = erlang:port_call(P, 1, x),
    erlang:port_close(P),
    Traces = trace_flush(P),
    Bad = [T || T <- Traces, not c_like(T, P, Self, Other)],
    ?assertEqual([], Bad),
    ?assertMatch([{trace, P, open, Self, _}, {trace, P, getting_linked, Self} | _], Traces).

%% A trace message a C driver's port could give here.
c_like({trace, P, open, Self, _}, P, Self, _) -> true;
c_like({trace, P, getting_linked, Self}, P, Self, _) -> true;
c_like({trace, P, 'receive', {From, _}}, P, Self, Other) -> lists:member(From, [Self, Other]);
c_like({trace, P, send, {P, _}, To}, P, Self, Other) -> lists:member(To, [Self, Other]);
c_like({trace, P, closed, normal}, P, _, _) -> true;
c_like({trace, P, unlink, Self}, P, Self, _) -> true;
c_like(_, _, _, _) -> false.

trace_flush(P) ->
    Ref = erlang:trace_delivered(all),
    receive {trace_delivered, all, Ref} -> ok end,
    trace_msgs(P).

trace_msgs(P) ->
    receive {trace, P, _, _} = M -> [M | trace_msgs(P)];
            {trace, P, _, _, _} = M -> [M | trace_msgs(P)]
    after 0 -> []
    end.

%% The reply binaries a traced port shows are term_to_binary/1's, byte for byte: the
%% Python side's (a port_call answer) and the driver's own ({ok, _}, pybridge:info/1's map).
replies_as_term_to_binary() ->
    P = pybridge:open("echo_term:EchoTerm", [binary]),
    erlang:trace(P, true, [send]),
    Pid = spawn(fun() -> ok end),
    Terms = [{hello, world, make_ref()}, {hello, world, lists:seq(1, 1000)},
             [self(), Pid, P, hd(erlang:ports())], #{a => 1, "b" => [c | d], 1.5 => <<1:3>>},
             {'héllo', 'кл', -1, 1 bsl 40, -(1 bsl 70), "str", <<"bin">>, []},
             fun lists:map/2],
    [begin
         Msg = erlang:port_call(P, 0, T),
         ?assertEqual(T, Msg),
         [{trace, P, send, {P, {call, Bin}}, _}] = trace_flush(P),
         ?assertEqual(term_to_binary(T), Bin)
     end || T <- Terms],
    T = {hello, world},
    ?assertEqual(T, pybridge:call(P, 0, T)),
    %% pybridge:call's answer: in port_call's reply, or past the spin in a message
    case trace_flush(P) of
        [{trace, P, send, {P, {call, Ok}}, _}] ->
            ?assertEqual(term_to_binary({ok, T}), Ok);
        [{trace, P, send, {P, {call, Pending}}, _},
         {trace, P, send, {pybridge_reply, P, Id, Reply}, _}] ->
            ?assertMatch({pybridge_pending, Id, _}, binary_to_term(Pending)),
            ?assertEqual(term_to_binary({pybridge_pending, Id, 5000}), Pending),
            ?assertEqual({ok, T}, Reply)
    end,
    Info = pybridge:info(P),
    [{trace, P, send, {P, {call, InfoBin}}, _}] = trace_flush(P),
    ?assertEqual(term_to_binary(Info), InfoBin),
    erlang:trace(P, false, [send]),
    port_close(P).
