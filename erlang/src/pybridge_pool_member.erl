%% @doc One member of a pool (docs/CLUSTER.md): it owns one pybridge port (one Driver
%% instance), is in the pool's pg group while the port is open, and serves the calls sent to
%% it in arrival order, one at a time, holding at most `max_queue' more behind the one
%% running; one past that is answered `overloaded' at once.
%%
%% Why a runner process: a port op (port_call, port_control, a port_command on a busy port)
%% holds the process that makes it until Python answers, bounded by the pool's timeout.
%% This process never makes one, so it admits, queues, refuses and answers pool_info at
%% once; its linked runner makes them and answers the caller directly. Why one at a time:
%% the port serves one control or call at a time anyway, and a second process calling into
%% it would wait for the port's lock on a scheduler thread.
%%
%% Its restarts: the supervisor restarts a dead member at once; the new one opens its port
%% after a backoff (100 ms, doubling to 5 s, back to 100 ms once a port had lived 10 s),
%% kept with the restart count in its slot of the pool supervisor's table.
-module(pybridge_pool_member).
-behaviour(gen_server).

-export([start_link/4, info/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(BACKOFF_MS, 100).
-define(MAX_BACKOFF_MS, 5000).
-define(HEALTHY_MS, 10000).

-type op() :: pybridge_pool:op().

-record(state, {pool :: atom(),
                index :: pos_integer(),
                config :: pybridge_pool:config(),
                slots :: ets:tid(),
                port = none :: port() | none,
                os_pid = 0 :: non_neg_integer(),
                runner = none :: pid() | none,
                running = none :: reference() | none,
                queue = queue:new() :: queue:queue({reference(), op()}),
                queued = 0 :: non_neg_integer(),
                served = 0 :: non_neg_integer(),
                refused = 0 :: non_neg_integer(),
                outputs = 0 :: non_neg_integer()}).

%% @doc Start member Index of Pool. The first start of a slot opens the port before it
%% returns (and fails with the open's reason); a restart returns at once and opens the port
%% after its backoff.
-spec start_link(atom(), pos_integer(), pybridge_pool:config(), ets:tid()) ->
          {ok, pid()} | {error, term()}.
start_link(Pool, Index, Config, Slots) ->
    gen_server:start_link(?MODULE, {Pool, Index, Config, Slots}, []).

%% @doc What pybridge:pool_info/1 reports of this member.
-spec info(pid()) -> pybridge_pool:member_info().
info(Member) ->
    gen_server:call(Member, info).

-spec init({atom(), pos_integer(), pybridge_pool:config(), ets:tid()}) ->
          {ok, #state{}} | {stop, term()}.
init({Pool, Index, Config, Slots}) ->
    process_flag(trap_exit, true),
    ok = pg:join(pybridge_pool_view:scope(), {members, Pool}, self()),
    State = #state{pool = Pool, index = Index, config = Config, slots = Slots},
    case ets:lookup(Slots, Index) of
        [] ->
            true = ets:insert(Slots, {Index, 0, 0, undefined, 0}),
            case open(State) of
                {ok, Open} -> {ok, Open};
                {error, Reason} -> {stop, Reason}
            end;
        [{Index, Restarts, Streak0, OpenedAt, _}] ->
            Healthy = is_integer(OpenedAt) andalso now_ms() - OpenedAt >= ?HEALTHY_MS,
            Streak = case Healthy of true -> 1; false -> Streak0 + 1 end,
            Backoff = min(?MAX_BACKOFF_MS, ?BACKOFF_MS bsl min(Streak - 1, 16)),
            true = ets:insert(Slots, {Index, Restarts + 1, Streak, undefined, Backoff}),
            _ = erlang:send_after(Backoff, self(), open),
            {ok, State}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(info, _From, #state{slots = Slots, index = I} = S) ->
    [{I, Restarts, _, _, Backoff}] = ets:lookup(Slots, I),
    Info = #{node => node(), pid => self(), index => I,
             state => case S#state.port of none -> backoff; _ -> ready end,
             in_flight => case S#state.running of none -> 0; _ -> 1 end,
             queued => S#state.queued, served => S#state.served, refused => S#state.refused,
             outputs => S#state.outputs, restarts => Restarts, backoff_ms => Backoff,
             os_pid => S#state.os_pid},
    {reply, Info, S};
handle_call(_, _From, S) ->
    {reply, {error, unknown}, S}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_, S) ->
    {noreply, S}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({'$pybridge_pool', Alias, Op}, #state{port = Port, running = none} = S)
  when Port =/= none ->
    {noreply, run(Alias, Op, S)};
handle_info({'$pybridge_pool', Alias, Op}, #state{port = Port, queued = Q,
                                                 config = #{max_queue := Max}} = S)
  when Port =/= none, Q < Max ->
    {noreply, S#state{queue = queue:in({Alias, Op}, S#state.queue), queued = Q + 1}};
handle_info({'$pybridge_pool', Alias, _Op}, S) ->
    %% full, or (seen by a caller whose view was a moment old) waiting out its backoff
    Alias ! {Alias, overloaded},
    {noreply, S#state{refused = S#state.refused + 1}};
handle_info({'$pybridge_pool_cancel', Alias}, S) ->
    Q = queue:filter(fun({A, _}) -> A =/= Alias end, S#state.queue),
    {noreply, S#state{queue = Q, queued = queue:len(Q)}};
handle_info({done, Runner}, #state{runner = Runner} = S) ->
    {noreply, next(S#state{running = none, served = S#state.served + 1})};
handle_info(open, S) ->
    case open(S) of
        {ok, Open} -> {noreply, Open};
        {error, Reason} -> {stop, {open_failed, Reason}, S}
    end;
handle_info({'EXIT', Port, Reason}, #state{port = Port} = S) ->
    {stop, {port_exit, Reason}, S#state{port = none}};
handle_info({'EXIT', Runner, Reason}, #state{runner = Runner} = S) ->
    {stop, {runner_exit, Reason}, S};
handle_info({Port, {data, _}}, #state{port = Port} = S) ->
    %% a pool's driver answers through call and control: its output has no one to go to
    {noreply, S#state{outputs = S#state.outputs + 1}};
handle_info(_, S) ->
    {noreply, S}.

%% Out of the groups first, so that no new call is routed here; the callers still queued
%% see this process go down: {pybridge, member_down}.
-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{pool = Pool, port = Port, runner = Runner}) ->
    Scope = pybridge_pool_view:scope(),
    _ = pg:leave(Scope, Pool, self()),
    _ = pg:leave(Scope, {members, Pool}, self()),
    is_pid(Runner) andalso exit(Runner, kill),
    _ = is_port(Port) andalso (catch erlang:port_close(Port)),
    ok.

-spec open(#state{}) -> {ok, #state{}} | {error, term()}.
open(#state{pool = Pool, index = I, slots = Slots,
            config = #{spec := Spec, args := Args, timeout := T, open_options := Opts}} = S) ->
    try pybridge:open(Spec, Args, [binary, {timeout, T} | Opts]) of
        Port ->
            #{os_pid := OsPid} = pybridge:info(Port),
            Self = self(),
            Runner = proc_lib:spawn_link(fun() -> runner(Port, Self) end),
            true = ets:update_element(Slots, I, {4, now_ms()}),
            ok = pg:join(pybridge_pool_view:scope(), Pool, self()),
            {ok, S#state{port = Port, os_pid = OsPid, runner = Runner}}
    catch error:Reason ->
        {error, Reason}
    end.

-spec run(reference(), op(), #state{}) -> #state{}.
run(Alias, Op, #state{runner = Runner} = S) ->
    Runner ! {run, Alias, Op},
    S#state{running = Alias}.

-spec next(#state{}) -> #state{}.
next(#state{queue = Q0} = S) ->
    case queue:out(Q0) of
        {{value, {Alias, Op}}, Q} -> run(Alias, Op, S#state{queue = Q, queued = S#state.queued - 1});
        {empty, _} -> S
    end.

%% The runner: one port op at a time, the answer straight to the caller's alias.
-spec runner(port(), pid()) -> no_return().
runner(Port, Member) ->
    receive
        {run, Alias, Op} ->
            Alias ! {Alias, port_op(Port, Op)},
            Member ! {done, self()},
            runner(Port, Member)
    end.

-spec port_op(port(), op()) -> {ok, term()} | {error, term()}.
port_op(Port, Op) ->
    try {ok, do(Port, Op)}
    catch error:Reason -> {error, member_error(Port, Reason)}
    end.

-spec do(port(), op()) -> term().
do(Port, {call, Cmd, Term}) -> pybridge:call(Port, Cmd, Term);
do(Port, {control, Cmd, Data}) -> pybridge:control(Port, Cmd, Data);
do(Port, {command, Data}) -> true = pybridge:command(Port, Data), ok.

%% An error that ends the port ends the member: the caller sees member_down, as it would
%% had the member died first. Any other (a Python exception, a timeout, badarg) is the
%% caller's, as for a local port.
-spec member_error(port(), term()) -> term().
member_error(_Port, {pybridge, Gone}) when Gone =:= worker_down; Gone =:= worker_hung;
                                           Gone =:= hung ->
    {pybridge, member_down};
member_error(Port, Reason) ->
    case erlang:port_info(Port, id) of
        undefined -> {pybridge, member_down};
        _ -> Reason
    end.

-spec now_ms() -> integer().
now_ms() ->
    erlang:monotonic_time(millisecond).
