%% @doc One Python worker process and its manager port.
%%
%% Owns the manager port (which spawned the worker and holds its ctl socket), turns
%% the worker's log frames into logger events, answers pid resolutions, and, when the
%% worker dies, makes every port it served exit with {pybridge, worker_down} before
%% the supervisor starts a fresh worker. Wire format: docs/PROTOCOL.md.
-module(pybridge_worker).
-behaviour(gen_server).

-include("pybridge_protocol.hrl").

-export([start_link/1, os_pid/1, class_flags/2, stats/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(HELLO_TIMEOUT, 15000).

-record(state, {n :: pos_integer(),
                mgr :: port(),
                os_pid :: non_neg_integer(),
                ports = #{} :: #{port() => reference()},
                next_id = 1 :: pos_integer(),
                asks = #{} :: #{pos_integer() => gen_server:from()}}).

-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(N) ->
    gen_server:start_link(?MODULE, N, []).

%% @doc The OS pid of the Python worker served by this process.
-spec os_pid(pid()) -> non_neg_integer().
os_pid(Pid) ->
    gen_server:call(Pid, os_pid).

%% @doc Slot, OS pid, resident memory (KiB) and open ports of this worker.
-spec stats(pid()) -> #{atom() => non_neg_integer()}.
stats(Pid) ->
    gen_server:call(Pid, stats).

%% @doc The driver flags of a Python driver class, asked of this worker.
-spec class_flags(pid(), string()) -> {ok, non_neg_integer()} | {error, binary()}.
class_flags(Pid, Spec) ->
    gen_server:call(Pid, {class_flags, Spec}, 15000).

-spec init(pos_integer()) -> {ok, #state{}} | {stop, term()}.
init(N) ->
    process_flag(trap_exit, true),
    Mgr = open_port({spawn_driver, "pybridge_manager"}, [binary]),
    MaxFrame = min(max(application:get_env(pybridge, max_frame, 256 bsl 20), 64), 16#FFFFFFFF),
    Spin = min(max(application:get_env(pybridge, spin_us, 50), 0), 10000),
    Argv = [python(), "-m", "pybridge", "worker", "--fd", "3",
            "--max-frame", integer_to_list(MaxFrame), "--spin-us", integer_to_list(Spin)
            | lists:append([["--path", P] || P <- python_path()])],
    Spawn = [<<(timeout()):32, MaxFrame:32, Spin:32>>
             | [[unicode:characters_to_binary(A), 0] || A <- Argv]],
    try list_to_binary(erlang:port_control(Mgr, ?MGR_SPAWN, Spawn)) of
        <<OsPid:32, _Slot:32>> ->
            await_hello(#state{n = N, mgr = Mgr, os_pid = OsPid})
    catch error:badarg ->
        {stop, {pybridge_spawn_failed, Argv}}
    end.

await_hello(S = #state{mgr = Mgr}) ->
    receive
        {Mgr, {data, <<_:32, ?CTL_HELLO, _:8, _:32, ?PB_PROTOCOL_VERSION:16, _/binary>>}} ->
            {ok, S};
        {Mgr, {data, <<_:32, ?CTL_HELLO, _:8, _:32, Proto:16, Vsn/binary>>}} ->
            Upgrade = case Proto > ?PB_PROTOCOL_VERSION of
                          true -> "the pybridge Erlang application (and its C driver)";
                          false -> "the pybridge Python package"
                      end,
            {stop, {pybridge_protocol_mismatch, [{driver, ?PB_PROTOCOL_VERSION},
                                                 {python, Proto, Vsn},
                                                 {upgrade, Upgrade}]}};
        {Mgr, {data, <<_:32, ?CTL_LOG, _:8, _:32, Body/binary>>}} ->
            log(Body, S),
            await_hello(S);
        {Mgr, {data, <<_:32, ?CTL_WORKER_EXIT, _:8, _:32, Status:32/signed>>}} ->
            {stop, {pybridge_worker_exited, Status}}
    after ?HELLO_TIMEOUT ->
        {stop, pybridge_hello_timeout}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) ->
    {reply, term(), #state{}} | {noreply, #state{}}.
handle_call(os_pid, _From, S) ->
    {reply, S#state.os_pid, S};
handle_call(stats, _From, S = #state{n = N, os_pid = OsPid, ports = Ports}) ->
    {reply, #{worker => N, os_pid => OsPid, rss_kib => rss_kib(OsPid), ports => map_size(Ports)}, S};
handle_call({class_flags, Spec}, From, S = #state{mgr = Mgr, next_id = Id, asks = Asks}) ->
    Body = unicode:characters_to_binary(Spec),
    erlang:port_command(Mgr, <<(byte_size(Body) + 6):32, ?CTL_CLASS_INFO, 0, Id:32, Body/binary>>),
    {noreply, S#state{next_id = Id + 1, asks = Asks#{Id => From}}};
handle_call(_Other, _From, S) ->
    {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({Mgr, {data, <<_:32, ?CTL_LOG, _:8, _:32, Body/binary>>}}, S = #state{mgr = Mgr}) ->
    log(Body, S),
    {noreply, S};
handle_info({Mgr, {data, <<_:32, ?CTL_WORKER_EXIT, _:8, _:32, Status:32/signed>>}},
            S = #state{mgr = Mgr}) ->
    {stop, {shutdown, {pybridge_worker_exited, Status}}, S};
handle_info({Mgr, {data, <<_:32, ?CTL_CLASS_INFO, _:8, Id:32, Status, Rest/binary>>}},
            S = #state{mgr = Mgr, asks = Asks}) ->
    case maps:take(Id, Asks) of
        {From, Asks1} ->
            gen_server:reply(From, case {Status, Rest} of
                                       {0, <<Flags:32>>} -> {ok, Flags};
                                       _ -> {error, Rest}
                                   end),
            {noreply, S#state{asks = Asks1}};
        error ->
            {noreply, S}
    end;
handle_info({pybridge_port_opened, Port}, S = #state{ports = Ports}) ->
    {noreply, S#state{ports = Ports#{Port => erlang:monitor(port, Port)}}};
handle_info({'DOWN', _Ref, port, Port, _}, S = #state{ports = Ports}) ->
    {noreply, S#state{ports = maps:remove(Port, Ports)}};
handle_info({pybridge_resolve, Raw, Pid}, S = #state{mgr = Mgr}) ->
    %% The worker waits for this inside a callback: answer straight to its ctl socket.
    Body = <<Raw:64, (term_to_binary(Pid))/binary>>,
    erlang:port_command(Mgr, ?FRAME(?CTL_PID_INFO, Body)),
    {noreply, S};
handle_info({pybridge_forward, To, Msg}, S) when is_pid(To) ->
    %% send_term to a pid the port never named: only Erlang can address it
    To ! Msg,
    {noreply, S};
handle_info({'EXIT', Mgr, Reason}, S = #state{mgr = Mgr}) ->
    {stop, {shutdown, {pybridge_manager_port, Reason}}, S};
handle_info(_Other, S) ->
    {noreply, S}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{mgr = Mgr, ports = Ports}) ->
    %% Why before closing the manager: a port must exit with a reason that names the
    %% cause, not linger until its own grace timer fails it.
    catch erlang:port_close(Mgr),
    [exit(P, {pybridge, worker_down}) || P <- maps:keys(Ports)],
    ok.

log(Body, #state{os_pid = OsPid}) ->
    try binary_to_term(Body) of
        {Level, Msg, Meta} when is_atom(Level), is_binary(Msg), is_map(Meta) ->
            %% no domain: OTP's default handler drops events of domains not its own
            logger:log(Level, "pybridge: ~ts", [Msg], Meta#{pybridge_worker => OsPid});
        Other ->
            logger:warning("pybridge: malformed log frame ~p", [Other])
    catch error:badarg ->
        logger:warning("pybridge: undecodable log frame from worker ~p", [OsPid])
    end.

rss_kib(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, S} ->
            case re:run(S, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]) of
                {match, [K]} -> list_to_integer(K);
                nomatch -> 0
            end;
        {error, _} -> 0
    end.

python() ->
    Configured = case application:get_env(pybridge, python, false) of
                     false -> os:getenv("PYBRIDGE_PYTHON", "python3");
                     P -> P
                 end,
    %% posix_spawn takes a path, not a name to look up
    case os:find_executable(Configured) of
        false -> Configured;
        Path -> Path
    end.

python_path() ->
    [filename:absname(D) || D <- application:get_env(pybridge, python_path, [])].

timeout() ->
    application:get_env(pybridge, timeout, 5000).
