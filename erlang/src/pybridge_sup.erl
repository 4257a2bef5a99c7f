%% @doc The application's supervisor: it loads the C driver, then supervises the pg scope
%% of pools (pybridge_pg) and this node's view of them (pybridge_pool_view), one
%% pybridge_manager per worker of each worker group, pybridge_drivers, and pybridge_pools:
%% the supervisor of the pools started with pybridge:start_pool/3 (children
%% {pybridge_pool, Name}). Why a supervisor of their own: a member opens its port while its
%% start_child runs, and opening asks this supervisor for its managers.
%%
%% A worker's death is not a child's death: its pybridge_manager restarts it in place,
%% with backoff (pybridge_manager), so no driver can use up the restart intensity.
-module(pybridge_sup).
-behaviour(supervisor).

-export([start_link/0, start_pools/0, init/1, driver_dir/0, managers/0, managers/1]).

-spec start_link() -> supervisor:startlink_ret().
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc The supervisor of the pools started here (pybridge_pool:start/3).
-spec start_pools() -> supervisor:startlink_ret().
start_pools() ->
    supervisor:start_link({local, pybridge_pools}, ?MODULE, pools).

-spec init([] | pools) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(pools) ->
    %% a pool's members back off (pybridge_pool_sup): a pool's own death is a bug
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, []}};
init([]) ->
    %% Why here: erl_ddll ties a driver to the process that loaded it; the supervisor
    %% lives as long as the application.
    ok = load_driver("pybridge"),
    %% Why second: pybridge_manager.so finds the registry of workers in pybridge.so.
    ok = load_driver("pybridge_manager"),
    ok = pybridge_classes:new_table(),
    Scope = #{id => pybridge_pg, start => {pg, start_link, [pybridge_pool_view:scope()]},
              restart => permanent, shutdown => 5000},
    View = #{id => pybridge_pool_view, start => {pybridge_pool_view, start_link, []},
             restart => permanent, shutdown => 5000},
    Pools = #{id => pybridge_pools, start => {?MODULE, start_pools, []},
              restart => permanent, shutdown => infinity, type => supervisor},
    Drivers = #{id => pybridge_drivers, start => {pybridge_drivers, start_link, []},
                restart => permanent, shutdown => 5000},
    %% Each manager's start returns once its worker has answered the handshake, or fails
    %% with the handshake's reason (see pybridge_manager:start_link/2).
    Managers = [#{id => {pybridge_manager, Name, N},
                  start => {pybridge_manager, start_link, [N, Group]},
                  restart => permanent,
                  shutdown => 5000}
                || Group = #{name := Name, size := Size} <- pybridge_config:worker_groups(),
                   N <- lists:seq(1, Size)],
    %% Only a manager's own crash counts here (not its worker's death); a Python that
    %% cannot start at all fails the first start, and so the application's.
    {ok, {#{strategy => one_for_one, intensity => 50, period => 10}, [Scope, View | Managers] ++ [Drivers, Pools]}}.

%% @doc The directory of pybridge.so and pybridge_manager.so.
-spec driver_dir() -> file:filename().
driver_dir() ->
    case code:priv_dir(pybridge) of
        {error, bad_name} -> filename:join(filename:dirname(code:which(?MODULE)), "../priv");
        D -> D
    end.

%% @doc The running pybridge_manager processes.
-spec managers() -> [pid()].
managers() ->
    [Pid || {{pybridge_manager, _, _}, Pid, _, _} <- supervisor:which_children(?MODULE),
            is_pid(Pid)].

%% @doc The pybridge_manager processes of one worker group.
-spec managers(atom()) -> [pid()].
managers(Group) ->
    [Pid || {{pybridge_manager, G, _}, Pid, _, _} <- supervisor:which_children(?MODULE),
            G =:= Group, is_pid(Pid)].

-spec load_driver(string()) -> ok.
load_driver(Name) ->
    Dir = driver_dir(),
    case erl_ddll:load_driver(Dir, Name) of
        ok -> ok;
        {error, already_loaded} -> ok;
        %% exit, not error: the application's start error is then this reason alone
        {error, E} -> exit({driver_load_failed, filename:join(Dir, Name ++ ".so"),
                            erl_ddll:format_error(E)})
    end.
