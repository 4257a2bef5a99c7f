%% @doc The supervisor of one pool's members on one node (docs/CLUSTER.md): `size'
%% pybridge_pool_member children, and the table where each member slot keeps its restart
%% count and backoff across its own deaths (the table is made in init/1, so this process
%% owns it and it lives as long as the pool here).
%%
%% A member's death is restarted at once, and the new member waits out its backoff before it
%% opens its port (pybridge_pool_member), so the restart intensity here is never what
%% bounds a crashing driver: the backoff is.
-module(pybridge_pool_sup).
-behaviour(supervisor).

-export([start_link/2, init/1]).

%% @doc Start Pool's members on this node; each opens its port before this returns (the
%% first start of a member that cannot open fails it, with the open's reason).
-spec start_link(atom(), pybridge_pool:config()) -> supervisor:startlink_ret().
start_link(Pool, Config) ->
    supervisor:start_link(?MODULE, {Pool, Config}).

-spec init({atom(), pybridge_pool:config()}) ->
          {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({Pool, #{size := Size, prefer := Prefer, timeout := Timeout} = Config}) ->
    Slots = ets:new(pybridge_pool_slots, [public, set]),
    ok = pybridge_pool_view:set_prefer(Pool, Prefer),
    Members = [#{id => {member, I},
                 start => {pybridge_pool_member, start_link, [Pool, I, Config, Slots]},
                 restart => permanent,
                 %% its terminate closes the port, which waits for a port op in progress
                 shutdown => min(Timeout, 60000) + 1000}
               || I <- lists:seq(1, Size)],
    %% a member restarts at most once per backoff (100 ms doubling): about 8 in 10 s
    {ok, {#{strategy => one_for_one, intensity => 20 * Size, period => 10}, Members}}.
