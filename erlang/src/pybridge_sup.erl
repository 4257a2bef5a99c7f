%% @doc The application's supervisor: it loads the C driver, then supervises one
%% pybridge_manager per pool slot and pybridge_drivers.
-module(pybridge_sup).
-behaviour(supervisor).

-export([start_link/0, init/1, driver_dir/0, managers/0]).

-spec start_link() -> supervisor:startlink_ret().
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    %% Why here: erl_ddll ties a driver to the process that loaded it; the supervisor
    %% lives as long as the application.
    ok = load_driver("pybridge"),
    %% Why second: pybridge_manager.so finds the registry of workers in pybridge.so.
    ok = load_driver("pybridge_manager"),
    Drivers = #{id => pybridge_drivers, start => {pybridge_drivers, start_link, []},
                restart => permanent, shutdown => 5000},
    %% Each manager's start returns once its worker has answered the handshake, or fails
    %% with the handshake's reason (see pybridge_manager:start_link/1).
    Managers = [#{id => {pybridge_manager, N},
                  start => {pybridge_manager, start_link, [N]},
                  restart => permanent,
                  shutdown => 5000}
                || N <- lists:seq(1, pybridge_config:pool_size())],
    %% Why so lenient: a killed worker is restarted at once and that is normal operation;
    %% a Python that cannot start at all still stops the application quickly.
    {ok, {#{strategy => one_for_one, intensity => 50, period => 10}, Managers ++ [Drivers]}}.

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
    [Pid || {{pybridge_manager, _}, Pid, _, _} <- supervisor:which_children(?MODULE), is_pid(Pid)].

-spec load_driver(string()) -> ok.
load_driver(Name) ->
    Dir = driver_dir(),
    case erl_ddll:load_driver(Dir, Name) of
        ok -> ok;
        {error, already_loaded} -> ok;
        {error, E} -> error({pybridge_driver_load, Dir, erl_ddll:format_error(E)})
    end.
