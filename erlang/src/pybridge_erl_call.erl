%% @doc One call from Python to Erlang (Port.call_erlang), on the Erlang side: a guard
%% process that runs apply(Module, Function, Args) in a fresh process, kills it if it has
%% not returned by the call's timeout, and sends the answer to the worker as CTL_ERL_RESULT
%% frames (docs/PROTOCOL.md, "Calls from Python to Erlang").
%%
%% Why two processes: the guard bounds the call. Python has given up at the timeout; a
%% function that waits for the port or for the control's caller (a deadlock by design)
%% would otherwise live on, and 10,000 of them would be a leak. Why not in
%% pybridge_manager: the manager must never wait on a user's function.
-module(pybridge_erl_call).

-export([start/3]).


-type answer() :: {ok, term()} | {error, error | exit | throw, term(), list()}.

%% @doc Run the call whose CTL_ERL_CALL body (the pieces joined) is Body, and answer call
%% Id through the manager port Mgr. Returns the guard's pid at once.
-spec start(port(), non_neg_integer(), binary()) -> pid().
start(Mgr, Id, Body) ->
    MaxFrame = pybridge_config:max_frame(),
    spawn(fun() -> guard(Mgr, Id, Body, MaxFrame) end).

-spec guard(port(), non_neg_integer(), binary(), pos_integer()) -> ok.
guard(Mgr, Id, Body, MaxFrame) ->
    case request(Body) of
        {ok, Timeout, M, F, A} ->
            case run(M, F, A, Timeout) of
                timeout -> ok;                  % Python has given up: nobody waits
                Answer -> answer(Mgr, Id, Answer, MaxFrame)
            end;
        error ->
            answer(Mgr, Id, {error, error, badarg, []}, MaxFrame)
    end.

-spec request(binary()) -> {ok, non_neg_integer(), atom(), atom(), list()} | error.
request(<<Timeout:32, Etf/binary>>) ->
    try binary_to_term(Etf) of
        {M, F, A} when is_atom(M), is_atom(F), is_list(A) -> {ok, Timeout, M, F, A};
        _ -> error
    catch error:badarg -> error
    end;
request(_) ->
    error.

-spec run(atom(), atom(), list(), non_neg_integer()) -> answer() | timeout.
run(M, F, A, Timeout) ->
    Guard = self(),
    Tag = make_ref(),
    {Pid, Ref} = spawn_monitor(fun() -> Guard ! {Tag, apply_caught(M, F, A)} end),
    receive
        {Tag, Answer} ->
            erlang:demonitor(Ref, [flush]),
            Answer;
        {'DOWN', Ref, process, Pid, Reason} ->   % killed by someone else, say
            {error, exit, Reason, []}
    after Timeout ->
        exit(Pid, kill),
        erlang:demonitor(Ref, [flush]),
        timeout
    end.

-spec apply_caught(atom(), atom(), list()) -> answer().
apply_caught(M, F, A) ->
    try {ok, apply(M, F, A)}
    catch Class:Reason:Stack ->
        %% the user's frames only: where the call came from is Python
        {error, Class, Reason, [Frame || Frame <- Stack, element(1, Frame) =/= ?MODULE]}
    end.

-spec answer(port(), non_neg_integer(), answer(), pos_integer()) -> ok.
answer(Mgr, Id, Answer, MaxFrame) ->
    Etf = case term_to_binary(Answer) of
              Big when byte_size(Big) + 6 > MaxFrame ->
                  term_to_binary({error, error, {pybridge, frame_too_large}, []});
              Fits ->
                  Fits
          end,
    try
        _ = [erlang:port_command(Mgr, Frame) || Frame <- pybridge_ctl:erl_result(Id, Etf)],
        ok
    catch error:badarg ->
        ok                                      % the worker has gone, and its manager port
    end.
