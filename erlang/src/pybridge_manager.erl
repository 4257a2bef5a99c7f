%% @doc The owner of one manager port: it spawns one Python worker, holds the worker's ctl
%% socket and serves it; one pybridge_manager per pool slot.
%%
%% It checks the worker's handshake, turns the worker's log frames into logger events,
%% answers pid resolutions and class-flag questions, and, when the worker dies, makes every
%% port the worker served exit with {pybridge, worker_down} before it stops, so that the
%% supervisor starts a fresh manager and worker. Frames: pybridge_ctl and docs/PROTOCOL.md.
-module(pybridge_manager).
-behaviour(gen_server).

-export([start_link/1, os_pid/1, class_flags/2, stats/1]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(HELLO_TIMEOUT, 15000).

-include("pybridge_protocol.hrl").

-record(state, {n :: pos_integer(),
                mgr :: port(),
                os_pid = 0 :: non_neg_integer(),
                %% spawning: until handle_continue/2 has run; handshake: spawned, HELLO not
                %% yet seen (the timer fails it); ready: serving
                phase = spawning :: spawning | {handshake, reference()} | ready,
                %% who waits for the end of the handshake (start_link/1)
                waiting = [] :: [gen_server:from()],
                ports = #{} :: #{port() => reference()},
                next_id = 1 :: pos_integer(),
                asks = #{} :: #{pos_integer() => gen_server:from()},
                %% what the worker's ports exit with when it ends: worker_hung once its
                %% watchdog (CTL_HUNG) or a port's wait (pybridge_worker_hung) said it hung
                down = worker_down :: worker_down | worker_hung}).

%% @doc Start the manager of pool slot N and wait for its worker's handshake.
%%
%% Why the wait is here and not in init/1: init/1 only opens the manager port; the spawn
%% and the HELLO exchange run in the live server (handle_continue/2, handle_info/2), so
%% the server answers calls and logs what the worker says while it starts, and the
%% handshake is a state of the running server, as a respawn in place will need. A worker
%% that cannot start must still fail the application's start with the handshake's reason
%% (README, docs/TROUBLESHOOTING.md, pybridge_handshake_tests): so the start function asks
%% the server for the end of its first handshake; a failed one stops the server with the
%% reason and start_link/1 returns {error, Reason}, as an init/1 returning {stop, Reason}
%% did, and the supervisor reports failed_to_start_child as before. The supervisor thus
%% still waits for the handshake, as for any child's start, but no process is held in init.
-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(N) ->
    {ok, Pid} = gen_server:start_link(?MODULE, N, []),
    try gen_server:call(Pid, await_handshake, infinity) of
        ok -> {ok, Pid}
    catch exit:{Reason, {gen_server, call, _}} ->
        %% the server is gone: drop its exit signal, as proc_lib does for a failed init
        unlink(Pid),
        receive {'EXIT', Pid, _} -> ok after 0 -> ok end,
        {error, Reason}
    end.

%% @doc The OS pid of the Python worker of this manager.
-spec os_pid(pid()) -> non_neg_integer().
os_pid(Pid) ->
    gen_server:call(Pid, os_pid).

%% @doc Slot, OS pid, resident memory (KiB) and open ports of this manager's worker.
-spec stats(pid()) -> #{atom() => non_neg_integer()}.
stats(Pid) ->
    gen_server:call(Pid, stats).

%% @doc The driver flags of a Python driver class, asked of this manager's worker.
-spec class_flags(pid(), string()) -> {ok, non_neg_integer()} | {error, binary()}.
class_flags(Pid, Spec) ->
    gen_server:call(Pid, {class_flags, Spec}, 15000).

-spec init(pos_integer()) -> {ok, #state{}, {continue, spawn}}.
init(N) ->
    process_flag(trap_exit, true),
    Mgr = open_port({spawn_driver, "pybridge_manager"}, [binary]),
    {ok, #state{n = N, mgr = Mgr}, {continue, spawn}}.

%% The spawn runs here, in the server, because the C driver sends the worker's port
%% notifications ({pybridge_port_opened, _} and the rest) to the process that spawned it.
-spec handle_continue(spawn, #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_continue(spawn, S = #state{mgr = Mgr}) ->
    MaxFrame = pybridge_config:max_frame(),
    Spin = pybridge_config:spin_us(),
    Argv = [pybridge_config:python(), "-m", "pybridge", "worker", "--fd", "3",
            "--max-frame", integer_to_list(MaxFrame), "--spin-us", integer_to_list(Spin),
            "--callback-limit", case pybridge_config:callback_limit() of
                                    infinity -> "0";
                                    Limit -> integer_to_list(Limit)
                                end
            | lists:append([["--path", P] || P <- pybridge_config:python_path()])],
    Request = pybridge_ctl:spawn_request(pybridge_config:timeout(), MaxFrame, Spin, Argv),
    try erlang:port_control(Mgr, ?MGR_SPAWN, Request) of
        Reply ->
            Timer = erlang:start_timer(?HELLO_TIMEOUT, self(), hello_timeout),
            {noreply, S#state{os_pid = pybridge_ctl:spawn_reply(Reply), phase = {handshake, Timer}}}
    catch error:badarg ->
        {stop, {pybridge_spawn_failed, Argv}, S}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) ->
    {reply, term(), #state{}} | {noreply, #state{}}.
handle_call(await_handshake, _From, S = #state{phase = ready}) ->
    {reply, ok, S};
handle_call(await_handshake, From, S = #state{waiting = Waiting}) ->
    {noreply, S#state{waiting = [From | Waiting]}};
handle_call(os_pid, _From, S) ->
    {reply, S#state.os_pid, S};
handle_call(stats, _From, S = #state{n = N, os_pid = OsPid, ports = Ports}) ->
    {reply, #{worker => N, os_pid => OsPid, rss_kib => rss_kib(OsPid), ports => map_size(Ports)}, S};
handle_call({class_flags, Spec}, From, S = #state{mgr = Mgr, next_id = Id, asks = Asks}) ->
    erlang:port_command(Mgr, pybridge_ctl:class_info(Id, Spec)),
    {noreply, S#state{next_id = Id + 1, asks = Asks#{Id => From}}};
handle_call(_Other, _From, S) ->
    {reply, {error, unknown_call}, S}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({Mgr, {data, Frame}}, S = #state{mgr = Mgr}) ->
    handle_ctl(pybridge_ctl:decode(Frame), S);
handle_info({timeout, Timer, hello_timeout}, S = #state{phase = {handshake, Timer}}) ->
    {stop, pybridge_hello_timeout, S};
handle_info({pybridge_port_opened, Port}, S = #state{ports = Ports}) ->
    {noreply, S#state{ports = Ports#{Port => erlang:monitor(port, Port)}}};
handle_info({'DOWN', _Ref, port, Port, _}, S = #state{ports = Ports}) ->
    {noreply, S#state{ports = maps:remove(Port, Ports)}};
handle_info({pybridge_port_hung, Port}, S) ->
    %% port-level locking: one port's callback hung; the worker and its other ports go on
    exit(Port, {pybridge, hung}),
    {noreply, S};
handle_info({pybridge_worker_hung, _Port}, S) ->
    %% the driver has killed the frozen worker: its end follows
    {noreply, S#state{down = worker_hung}};
handle_info({pybridge_resolve, Raw, Pid}, S = #state{mgr = Mgr}) ->
    %% The worker waits for this inside a callback: answer straight to its ctl socket.
    erlang:port_command(Mgr, pybridge_ctl:pid_info(Raw, Pid)),
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
terminate(_Reason, #state{mgr = Mgr, ports = Ports, down = Down}) ->
    %% Why before closing the manager: a port must exit with a reason that names the
    %% cause, not linger until its own grace timer fails it.
    catch erlang:port_close(Mgr),
    [exit(P, {pybridge, Down}) || P <- maps:keys(Ports)],
    ok.

%% One frame from the manager port. Before the handshake ends, the worker's end stops the
%% server with the reason start_link/1 returns; after it, with a shutdown, which the
%% supervisor answers with a fresh manager, without an error report.
-spec handle_ctl(pybridge_ctl:event(), #state{}) ->
    {noreply, #state{}} | {stop, term(), #state{}}.
handle_ctl({hello, ?PB_PROTOCOL_VERSION, _Version},
           S = #state{phase = {handshake, Timer}, waiting = Waiting}) ->
    _ = erlang:cancel_timer(Timer),
    [gen_server:reply(From, ok) || From <- Waiting],
    {noreply, S#state{phase = ready, waiting = []}};
handle_ctl({hello, Proto, Version}, S = #state{phase = {handshake, _}}) ->
    Upgrade = case Proto > ?PB_PROTOCOL_VERSION of
                  true -> "the pybridge Erlang application (and its C driver)";
                  false -> "the pybridge Python package"
              end,
    {stop, {pybridge_protocol_mismatch, [{driver, ?PB_PROTOCOL_VERSION},
                                         {python, Proto, Version},
                                         {upgrade, Upgrade}]}, S};
handle_ctl({log, Level, Msg, Meta}, S = #state{os_pid = OsPid}) ->
    %% no domain: OTP's default handler drops events of domains not its own. The key
    %% pybridge_worker (the worker's OS pid) is what users filter on: kept as it was.
    logger:log(Level, "pybridge: ~ts", [Msg], Meta#{pybridge_worker => OsPid}),
    {noreply, S};
handle_ctl({bad_log, {malformed, Other}}, S) ->
    logger:warning("pybridge: malformed log frame ~p", [Other]),
    {noreply, S};
handle_ctl({bad_log, undecodable}, S = #state{os_pid = OsPid}) ->
    logger:warning("pybridge: undecodable log frame from worker ~p", [OsPid]),
    {noreply, S};
handle_ctl({worker_exit, Status}, S = #state{phase = ready}) ->
    {stop, {shutdown, {pybridge_worker_exited, Status}}, S};
handle_ctl({worker_exit, Status}, S) ->
    {stop, {pybridge_worker_exited, Status}, S};
handle_ctl({hung, Spec}, S) ->
    logger:error("pybridge: a callback of ~ts hung worker ~p (driver-level locking): it is "
                 "replaced, its ports exit {pybridge, worker_hung}", [Spec, S#state.os_pid]),
    {noreply, S#state{down = worker_hung}};
handle_ctl({class_info, Id, Answer}, S = #state{asks = Asks}) ->
    case maps:take(Id, Asks) of
        {From, Asks1} ->
            gen_server:reply(From, Answer),
            {noreply, S#state{asks = Asks1}};
        error ->
            {noreply, S}
    end;
handle_ctl(_Other, S) ->
    {noreply, S}.

-spec rss_kib(non_neg_integer()) -> non_neg_integer().
rss_kib(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status") of
        {ok, S} ->
            case re:run(S, "VmRSS:\\s+([0-9]+) kB", [{capture, all_but_first, list}]) of
                {match, [K]} -> list_to_integer(K);
                nomatch -> 0
            end;
        {error, _} -> 0
    end.
