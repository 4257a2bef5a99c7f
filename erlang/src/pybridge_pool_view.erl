%% @doc This node's view for routing pool calls (docs/CLUSTER.md): how many calls this
%% node has in flight at each member, and the `prefer' of the pools started here. One
%% public ETS table: callers (pybridge_pool) count their calls in it, pool supervisors
%% write their `prefer'. This process owns it and forgets the count of a member that leaves
%% a group, which a caller killed mid-call would otherwise leave behind. Why pg's events
%% and not a periodic sweep: with a 5 s sweep timer, pybridge_locking_tests' bound (another
%% port answers within 100 ms while one port's callback blocks) failed most runs.
-module(pybridge_pool_view).
-behaviour(gen_server).

-export([start_link/0, scope/0, call_sent/2, call_done/1, load/1, set_prefer/2, forget_prefer/1,
         prefer/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TAB, ?MODULE).
%% the pg scope of every pool, started by pybridge_sup
-define(SCOPE, pybridge_pg).

%% @doc Start the owner of the table (from pybridge_sup).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The pg scope the pools' groups live in.
-spec scope() -> atom().
scope() ->
    ?SCOPE.

%% @doc A call of this node to Member of Pool is in flight.
-spec call_sent(pid(), atom()) -> ok.
call_sent(Member, Pool) ->
    _ = ets:update_counter(?TAB, {load, Member}, 1, {{load, Member}, 0, Pool}),
    ok.

%% @doc That call is over. A count that falls to 0 goes, so the table holds only members
%% with calls in flight (delete_object leaves a count another caller raised meanwhile).
-spec call_done(pid()) -> ok.
call_done(Member) ->
    Key = {load, Member},
    case ets:update_counter(?TAB, Key, {2, -1, 0, 0}, {Key, 0, undefined}) of
        0 -> _ = ets:select_delete(?TAB, [{{Key, 0, '_'}, [], [true]}]), ok;
        _ -> ok
    end.

%% @doc The calls this node has in flight at Member.
-spec load(pid()) -> non_neg_integer().
load(Member) ->
    case ets:lookup(?TAB, {load, Member}) of
        [{_, N, _}] -> N;
        [] -> 0
    end.

%% @doc How this node routes calls of Pool while Pool has members here.
-spec set_prefer(atom(), local | least_loaded) -> ok.
set_prefer(Pool, Prefer) ->
    true = ets:insert(?TAB, {{prefer, Pool}, Prefer}),
    ok.

%% @doc Pool no longer runs here (pybridge:stop_pool/1).
-spec forget_prefer(atom()) -> ok.
forget_prefer(Pool) ->
    true = ets:delete(?TAB, {prefer, Pool}),
    ok.

%% @doc The `prefer' of Pool's start here; `local' (the same as least_loaded when this
%% node has no member) where it was not started here.
-spec prefer(atom()) -> local | least_loaded.
prefer(Pool) ->
    case ets:lookup(?TAB, {prefer, Pool}) of
        [{_, Prefer}] -> Prefer;
        [] -> local
    end.

-spec init([]) -> {ok, reference()}.
init([]) ->
    _ = ets:new(?TAB, [named_table, public, set, {write_concurrency, true},
                       {read_concurrency, true}]),
    {Ref, _Groups} = pg:monitor_scope(?SCOPE),
    {ok, Ref}.

-spec handle_call(term(), gen_server:from(), reference()) ->
          {reply, {error, unknown}, reference()}.
handle_call(_, _From, Ref) ->
    {reply, {error, unknown}, Ref}.

-spec handle_cast(term(), reference()) -> {noreply, reference()}.
handle_cast(_, Ref) ->
    {noreply, Ref}.

-spec handle_info(term(), reference()) -> {noreply, reference()}.
handle_info({Ref, leave, _Group, Members}, Ref) ->
    _ = [ets:delete(?TAB, {load, M}) || M <- Members],
    {noreply, Ref};
handle_info(_, Ref) ->
    {noreply, Ref}.
