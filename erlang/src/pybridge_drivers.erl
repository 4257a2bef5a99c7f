%% @doc Named drivers: a Python driver class under a driver name of its own.
%%
%% load/2 copies the pybridge driver to NAME.so with NAME.conf beside it (see "Named
%% drivers" in docs/PROTOCOL.md) and loads it with erl_ddll, which this process then
%% holds. Why a copy: a driver's name is its file's name, and the dynamic loader would
%% hand back the already-loaded pybridge.so for a link to it.
-module(pybridge_drivers).
-behaviour(gen_server).

-export([start_link/0, load/2, unload/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec load(string(), string()) -> ok | {error, term()}.
load(Name, Spec) ->
    gen_server:call(?MODULE, {load, Name, Spec}, 30000).

-spec unload(string()) -> ok | {error, term()}.
unload(Name) ->
    gen_server:call(?MODULE, {unload, Name}, 30000).

-spec init([]) -> {ok, #{string() => file:filename()}}.
init([]) ->
    process_flag(trap_exit, true),
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({load, Name, Spec}, _From, Loaded) ->
    case maps:is_key(Name, Loaded) of
        true -> {reply, {error, already_loaded}, Loaded};
        false ->
            case do_load(Name, Spec) of
                {ok, Dir} -> {reply, ok, Loaded#{Name => Dir}};
                Error -> {reply, Error, Loaded}
            end
    end;
handle_call({unload, Name}, _From, Loaded) ->
    case maps:take(Name, Loaded) of
        {Dir, Rest} ->
            %% kill_ports: every port of the driver exits with reason driver_unloaded
            Reply = case erl_ddll:try_unload(Name, [kill_ports]) of
                        {ok, _} -> ok;
                        {error, _} = E -> E
                    end,
            _ = file:del_dir_r(Dir),
            {reply, Reply, Rest};
        error ->
            {reply, {error, not_loaded}, Loaded}
    end.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, Loaded) ->
    {noreply, Loaded}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(_Msg, Loaded) ->
    {noreply, Loaded}.

-spec terminate(term(), map()) -> ok.
terminate(_Reason, Loaded) ->
    lists:foreach(fun({N, D}) -> _ = erl_ddll:try_unload(N, [kill_ports]), _ = file:del_dir_r(D) end,
                  maps:to_list(Loaded)).

-spec do_load(string(), string()) -> {ok, file:filename()} | {error, term()}.
do_load(Name, Spec) ->
    case any_manager() of
        undefined -> {error, no_worker};
        Manager ->
            case pybridge_manager:class_info(Manager, Spec) of
                {ok, Flags, Callbacks, Group} ->
                    case group_of(Group) of
                        {ok, Index} -> install(Name, Spec, Flags, Callbacks, Index);
                        error -> {error, {unknown_worker_group, Group}}
                    end;
                {error, Why} -> {error, {python, Why}}
            end
    end.

%% The index of the group the class's worker_group attribute names (<<>>: the default).
-spec group_of(binary()) -> {ok, non_neg_integer()} | error.
group_of(<<>>) ->
    {ok, 0};
group_of(Name) ->
    case [G || #{name := G} <- pybridge_config:worker_groups(), atom_to_binary(G) =:= Name] of
        [G] -> pybridge_config:group_index(G);
        [] -> error
    end.

-spec install(string(), string(), non_neg_integer(), non_neg_integer(), non_neg_integer()) ->
    {ok, file:filename()} | {error, term()}.
install(Name, Spec, Flags, Callbacks, Group) ->
    Main = filename:join(pybridge_sup:driver_dir(), "pybridge.so"),
    Dir = filename:join([filename:basedir(user_cache, "pybridge"),
                         os:getpid() ++ "-" ++ integer_to_list(erlang:unique_integer([positive])),
                         Name]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    {ok, _} = file:copy(Main, filename:join(Dir, Name ++ ".so")),
    ok = file:write_file(filename:join(Dir, Name ++ ".conf"),
                         [Name, $\n, Spec, $\n, integer_to_list(Flags), $\n, Main, $\n,
                          integer_to_list(Callbacks), $\n, integer_to_list(Group), $\n]),
    case erl_ddll:load_driver(Dir, Name) of
        ok -> {ok, Dir};
        {error, E} ->
            _ = file:del_dir_r(Dir),
            {error, {driver_load, erl_ddll:format_error(E)}}
    end.

-spec any_manager() -> pid() | undefined.
any_manager() ->
    case pybridge_sup:managers(default) of
        [P | _] -> P;
        [] -> undefined
    end.
