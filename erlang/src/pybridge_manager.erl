%% @doc The owner of one manager port: it runs one Python worker (through its nanny,
%% docs/PROTOCOL.md "The nanny"), holds the worker's ctl socket and serves it; one
%% pybridge_manager per worker of each worker group.
%%
%% It checks the worker's handshake, turns the worker's log frames into logger events,
%% answers class questions, relays a reload's phases, hands the worker's calls to Erlang
%% (Port.call_erlang) to pybridge_erl_call, and, when the worker dies, logs how (its exit
%% status or signal) and which driver class it blames, makes every port the worker served
%% exit with {pybridge, worker_down}, and starts a fresh worker in place, after a backoff
%% that grows while workers keep dying young. Why not the supervisor: its restart
%% intensity would end the application (and a permanent one, the node) after enough deaths.
%% Frames: pybridge_ctl and docs/PROTOCOL.md.
-module(pybridge_manager).
-behaviour(gen_server).

-export([start_link/2, os_pid/1, class_info/2, reload/2, stats/1, last_exit/1]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
-export_type([exit/0]).

-define(HELLO_TIMEOUT, 15000).
%% a worker that lived this long died of something new: the backoff starts again
-define(STABLE_MS, 5000).
-define(FIRST_BACKOFF_MS, 50).
-define(MAX_BACKOFF_MS, 2000).

-include("pybridge_protocol.hrl").

%% How a worker ended: its exit status, the signal that killed it, or unknown (its nanny
%% was killed, which kills the worker too).
-type exit() :: {exit_status, 0..255} | {signal, pos_integer()} | unknown.

%% A port: its monitor and its class.
-type port_info() :: {reference(), binary()}.

-record(state, {n :: pos_integer(),
                group :: pybridge_config:group(),
                mgr :: port(),
                os_pid = 0 :: non_neg_integer(),
                %% spawning: until the spawn has run; handshake: spawned, HELLO not yet
                %% seen (the timer fails it); ready: serving; restarting: waiting for the
                %% backoff timer before the next spawn
                phase = spawning :: spawning | {handshake, reference()} | ready | restarting,
                %% false until the first handshake: until then a failure is start_link's
                started = false :: boolean(),
                %% who waits for the end of the handshake (start_link/2)
                waiting = [] :: [gen_server:from()],
                ports = #{} :: #{port() => port_info()},
                spawned_at = 0 :: integer(),
                %% deaths in a row of workers that lived less than STABLE_MS
                young_deaths = 0 :: non_neg_integer(),
                last_exit = none :: exit() | none,
                %% the worker's own argv (what the nanny execs), for the error reports
                argv = [] :: [string()],
                next_id = 1 :: pos_integer(),
                asks = #{} :: #{pos_integer() => gen_server:from()},
                %% Port.call_erlang requests whose pieces are still coming (FL_MORE)
                calls = #{} :: #{non_neg_integer() => [binary()]},
                %% what the worker's ports exit with when it ends: worker_hung once its
                %% watchdog (CTL_HUNG) or a port's wait (pybridge_worker_hung) said it hung
                down = worker_down :: worker_down | worker_hung}).

%% @doc Start the manager of worker N of a group and wait for its worker's handshake.
%%
%% Why the wait is here and not in init/1: init/1 only opens the manager port; the spawn
%% and the HELLO exchange run in the live server (handle_continue/2, handle_info/2), so
%% the server answers calls and logs what the worker says while it starts, and the
%% handshake is a state of the running server, as a respawn in place will need. A worker
%% that cannot start must still fail the application's start with the handshake's reason
%% (README, docs/TROUBLESHOOTING.md, pybridge_handshake_tests): so the start function asks
%% the server for the end of its first handshake; a failed one stops the server with the
%% reason and start_link/2 returns {error, Reason}, as an init/1 returning {stop, Reason}
%% did, and the supervisor reports failed_to_start_child as before. The supervisor thus
%% still waits for the handshake, as for any child's start, but no process is held in init.
-spec start_link(pos_integer(), pybridge_config:group()) -> {ok, pid()} | {error, term()}.
start_link(N, Group) ->
    {ok, Pid} = gen_server:start_link(?MODULE, {N, Group}, []),
    try gen_server:call(Pid, await_handshake, infinity) of
        ok -> {ok, Pid}
    catch exit:{Reason, {gen_server, call, _}} ->
        %% the server is gone: drop its exit signal, as proc_lib does for a failed init
        unlink(Pid),
        receive {'EXIT', Pid, _} -> ok after 0 -> ok end,
        {error, Reason}
    end.

%% @doc The OS pid of the Python worker of this manager (0 while it restarts).
-spec os_pid(pid()) -> non_neg_integer().
os_pid(Pid) ->
    gen_server:call(Pid, os_pid).

%% @doc Group, slot, OS pid, resident memory (KiB) and open ports of this manager's
%% worker; none while the worker restarts: a dead pid is never listed.
-spec stats(pid()) -> {ok, #{atom() => atom() | non_neg_integer()}} | none.
stats(Pid) ->
    gen_server:call(Pid, stats).

%% @doc How this manager's last worker ended (none: none has ended yet).
-spec last_exit(pid()) -> exit() | none.
last_exit(Pid) ->
    gen_server:call(Pid, last_exit).

%% @doc The driver flags, callbacks (CB_*) and worker group name ("" for none) of a
%% Python driver class,
%% asked of this manager's worker.
%% {error, Atom}: the worker could not be asked.
-spec class_info(pid(), string()) ->
    {ok, non_neg_integer(), non_neg_integer(), binary()}
    | {error, binary() | restarting | worker_down}.
class_info(Pid, Spec) ->
    gen_server:call(Pid, {class_info, Spec}, 15000).

%% @doc Send one phase of a reload (pybridge:reload/1) to this manager's worker, without
%% waiting: gen_server:receive_response/2 of the id returned gets its answer, a
%% pybridge_ctl:reload_answer() or {error, restarting | worker_down} (then this worker
%% has no old code to reload).
-spec reload(pid(), pybridge_ctl:reload_request()) -> gen_server:request_id().
reload(Pid, Request) ->
    gen_server:send_request(Pid, {reload, Request}).

-spec init({pos_integer(), pybridge_config:group()}) -> {ok, #state{}, {continue, spawn}}.
init({N, Group}) ->
    process_flag(trap_exit, true),
    Mgr = open_port({spawn_driver, "pybridge_manager"}, [binary]),
    {ok, #state{n = N, group = Group, mgr = Mgr}, {continue, spawn}}.

%% The spawn runs here, in the server, because the C driver sends the worker's port
%% notifications ({pybridge_port_opened, _, _} from the manager port, the rest from the
%% ports) to the process that spawned it.
-spec handle_continue(spawn, #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_continue(spawn, S) ->
    spawn_worker(S).

-spec spawn_worker(#state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
spawn_worker(S = #state{started = false}) ->
    %% the application's start fails with the interpreter's name, not the nanny's status
    case pybridge_diagnose:python_found(pybridge_config:python()) of
        ok -> spawn_worker_now(S);
        NotFound -> {stop, NotFound, S}
    end;
spawn_worker(S) ->
    spawn_worker_now(S).

-spec spawn_worker_now(#state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
spawn_worker_now(S = #state{mgr = Mgr, group = #{index := Index, memory_limit := Limit}}) ->
    MaxFrame = pybridge_config:max_frame(),
    Spin = pybridge_config:spin_us(),
    Nanny = filename:join(pybridge_sup:driver_dir(), "pybridge_nanny"),
    Worker = pybridge_ctl:with_env(
               pybridge_config:worker_env(),
               [pybridge_config:python(), "-m", "pybridge", "worker", "--fd", "3",
                "--max-frame", integer_to_list(MaxFrame), "--spin-us", integer_to_list(Spin),
                "--callback-limit", case pybridge_config:callback_limit() of
                                        infinity -> "0";
                                        CallbackLimit -> integer_to_list(CallbackLimit)
                                    end,
                %% this process's external form: the manager port adds its raw value, and
                %% the worker makes every pid's external form from the two (no messages)
                "--node-pid", binary_to_list(binary:encode_hex(term_to_binary(self()))),
                %% the layout of local pids' and ports' words, whose hashes order big maps
                "--node-limits", lists:concat([erlang:system_info(process_limit), ",",
                                               erlang:system_info(port_limit)])
                | lists:append([["--path", P] || P <- pybridge_config:python_path()])]),
    Argv = [Nanny, os:getpid(), integer_to_list(Limit), "--" | Worker],
    Request = pybridge_ctl:spawn_request(pybridge_config:timeout(), MaxFrame, Spin, Index, Argv),
    try erlang:port_control(Mgr, ?MGR_SPAWN, Request) of
        Reply ->
            Timer = erlang:start_timer(?HELLO_TIMEOUT, self(), hello_timeout),
            {noreply, S#state{os_pid = pybridge_ctl:spawn_reply(Reply), phase = {handshake, Timer},
                              spawned_at = erlang:monotonic_time(millisecond), argv = Worker}}
    catch error:badarg when S#state.started ->
        logger:error("pybridge: could not spawn a worker: ~p", [Argv]),
        restart_later(S)
    ; error:badarg ->
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
handle_call(last_exit, _From, S) ->
    {reply, S#state.last_exit, S};
handle_call(stats, _From, S = #state{phase = ready, n = N, group = #{name := G}, os_pid = OsPid,
                                      ports = Ports}) ->
    {reply, {ok, #{group => G, worker => N, os_pid => OsPid, rss_kib => rss_kib(OsPid),
                   ports => map_size(Ports)}}, S};
handle_call(stats, _From, S) ->
    {reply, none, S};
handle_call({class_info, _Spec}, _From, S = #state{phase = Phase}) when Phase =/= ready ->
    {reply, {error, restarting}, S};
handle_call({class_info, Spec}, From, S = #state{next_id = Id}) ->
    ask(pybridge_ctl:class_info(Id, Spec), From, S);
handle_call({reload, _Request}, _From, S = #state{phase = Phase}) when Phase =/= ready ->
    {reply, {error, restarting}, S};
handle_call({reload, Request}, From, S = #state{next_id = Id}) ->
    ask(pybridge_ctl:reload(Id, Request), From, S);
handle_call(_Other, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% A request to the worker; its answer (handle_ctl) is From's reply.
-spec ask(binary(), gen_server:from(), #state{}) -> {noreply, #state{}}.
ask(Frame, From, S = #state{mgr = Mgr, next_id = Id, asks = Asks}) ->
    erlang:port_command(Mgr, Frame),
    {noreply, S#state{next_id = Id + 1, asks = Asks#{Id => From}}}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({Mgr, {data, Frame}}, S = #state{mgr = Mgr}) ->
    handle_ctl(pybridge_ctl:decode(Frame), S);
handle_info({timeout, Timer, hello_timeout}, S = #state{phase = {handshake, Timer}, started = false}) ->
    {stop, pybridge_hello_timeout, S};
handle_info({timeout, Timer, hello_timeout}, S = #state{phase = {handshake, Timer}, mgr = Mgr}) ->
    %% a fresh manager port: closing this one kills the silent worker (and its nanny)
    logger:error("pybridge: worker ~p of group ~p did not answer the handshake",
                 [S#state.os_pid, group_name(S)]),
    unlink(Mgr),
    catch erlang:port_close(Mgr),
    restart_later(S#state{mgr = open_port({spawn_driver, "pybridge_manager"}, [binary])});
handle_info({timeout, _, respawn}, S = #state{phase = restarting}) ->
    spawn_worker(S);
handle_info({pybridge_port_opened, Port, Spec}, S = #state{ports = Ports}) ->
    %% a port of a worker that died already is DOWN at once
    {noreply, S#state{ports = Ports#{Port => {erlang:monitor(port, Port), Spec}}}};
handle_info({'DOWN', _Ref, port, Port, _}, S = #state{ports = Ports}) ->
    {noreply, S#state{ports = maps:remove(Port, Ports)}};
handle_info({pybridge_port_hung, Port}, S) ->
    %% port-level locking: one port's callback hung; the worker and its other ports go on
    exit(Port, {pybridge, hung}),
    {noreply, S};
handle_info({pybridge_worker_hung, _Port}, S) ->
    %% the driver has killed the frozen worker: its end follows
    {noreply, S#state{down = worker_hung}};
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
    catch erlang:port_close(Mgr),
    ports_down(Ports, Down).

%% Why by Erlang: a port must exit with a reason that names the cause, not linger until
%% its own grace timer fails it (a child the driver forked may hold its channel open).
-spec ports_down(#{port() => port_info()}, worker_down | worker_hung) -> ok.
ports_down(Ports, Down) ->
    _ = [exit(P, {pybridge, Down}) || P <- maps:keys(Ports)],
    ok.

%% One frame from the manager port. Before the first handshake ends, the worker's end
%% stops the server with the reason start_link/2 returns; after it, the worker is
%% restarted in place.
-spec handle_ctl(pybridge_ctl:event(), #state{}) ->
    {noreply, #state{}} | {stop, term(), #state{}}.
handle_ctl({hello, ?PB_PROTOCOL_VERSION, _Version},
           S = #state{phase = {handshake, Timer}, waiting = Waiting}) ->
    _ = erlang:cancel_timer(Timer),
    [gen_server:reply(From, ok) || From <- Waiting],
    {noreply, S#state{phase = ready, started = true, waiting = []}};
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
handle_ctl({worker_exit, Status, _, _}, S = #state{started = false, argv = Argv}) ->
    %% 127: the nanny could not exec the interpreter, as posix_spawn once said itself
    Python = pybridge_config:python(),
    case {exit_of(Status), pybridge_diagnose:python_found(Python)} of
        {{exit_status, 127}, ok} -> {stop, {pybridge_spawn_failed, Argv}, S};
        {Exit, _} -> {stop, pybridge_diagnose:worker_exited(Python, pybridge_config:worker_env(),
                                                           Exit), S}
    end;
handle_ctl({worker_exit, Status, Busy, Blame}, S) ->
    worker_died(exit_of(Status), blame(Busy, Blame, S#state.ports), S);
handle_ctl({hung, Spec}, S) ->
    logger:error("pybridge: a callback of ~ts hung worker ~p (driver-level locking): it is "
                 "replaced, its ports exit {pybridge, worker_hung}", [Spec, S#state.os_pid]),
    {noreply, S#state{down = worker_hung}};
handle_ctl({class_info, Id, Answer}, S) ->
    answer(Id, Answer, S);
handle_ctl({reload, Id, Answer}, S) ->
    answer(Id, Answer, S);
handle_ctl({erl_call, Id, true, Piece}, S = #state{calls = Calls}) ->
    Pieces = [Piece | maps:get(Id, Calls, [])],
    case length(Pieces) * ?MAX_CTL_MSG > pybridge_config:max_frame() of
        true ->     % the worker refuses such a request: this one is not pybridge's
            logger:warning("pybridge: a call_erlang request over max_frame from worker ~p "
                           "dropped", [S#state.os_pid]),
            {noreply, S#state{calls = maps:remove(Id, Calls)}};
        false ->
            {noreply, S#state{calls = Calls#{Id => Pieces}}}
    end;
handle_ctl({erl_call, Id, false, Piece}, S = #state{mgr = Mgr, calls = Calls}) ->
    %% the call runs in processes of its own: this server never waits on a user's function
    {Pieces, Calls1} = case maps:take(Id, Calls) of
                           {Before, Rest} -> {lists:reverse(Before, [Piece]), Rest};
                           error -> {[Piece], Calls}
                       end,
    _ = pybridge_erl_call:start(Mgr, Id, iolist_to_binary(Pieces)),
    {noreply, S#state{calls = Calls1}};
handle_ctl(_Other, S) ->
    {noreply, S}.

-spec answer(non_neg_integer(), term(), #state{}) -> {noreply, #state{}}.
answer(Id, Answer, S = #state{asks = Asks}) ->
    %% an answer that comes after its worker died finds no asker: dropped
    case maps:take(Id, Asks) of
        {From, Asks1} ->
            gen_server:reply(From, Answer),
            {noreply, S#state{asks = Asks1}};
        error ->
            {noreply, S}
    end.

%% The worker is gone: say how and whom it blames, end its ports, answer who waited on
%% it, and restart it after the backoff.
-spec worker_died(exit(), binary() | none, #state{}) -> {noreply, #state{}}.
worker_died(Exit, Blamed, S = #state{ports = Ports, asks = Asks, os_pid = OsPid, down = Down}) ->
    logger:error("pybridge: worker ~p of group ~p ~ts~ts; its ~p port(s) exit with "
                 "{pybridge, ~p}",
                 [OsPid, group_name(S), describe(Exit),
                  case Blamed of none -> ""; _ -> [", blamed on ", Blamed] end,
                  map_size(Ports), Down],
                 #{pybridge_worker => OsPid}),
    ok = ports_down(Ports, Down),
    _ = [gen_server:reply(From, {error, worker_down}) || From <- maps:values(Asks)],
    case Blamed of
        none -> ok;
        _ -> crash_loop(binary_to_list(Blamed), pybridge_classes:death(binary_to_list(Blamed)),
                        OsPid)
    end,
    Lived = erlang:monotonic_time(millisecond) - S#state.spawned_at,
    Young = case Lived < ?STABLE_MS of true -> S#state.young_deaths + 1; false -> 0 end,
    restart_later(S#state{ports = #{}, asks = #{}, calls = #{}, os_pid = 0, last_exit = Exit,
                          young_deaths = Young, down = worker_down}).

-spec crash_loop(string(), ok | {crash_loop, pos_integer(), non_neg_integer()},
                 non_neg_integer()) -> ok.
crash_loop(_Spec, ok, _OsPid) ->
    ok;
crash_loop(Spec, {crash_loop, Deaths, Refuse}, OsPid) ->
    logger:error("pybridge: driver class ~ts killed its worker ~p times in a row: its opens "
                 "are refused with {pybridge, crash_loop} for ~p ms", [Spec, Deaths, Refuse],
                 #{pybridge_worker => OsPid}).

%% Which class a death is blamed on: the one whose start, control or call waited longest
%% for the worker, as the C driver saw it (the worker serves one callback at a time);
%% when none waited, the only class on the worker; otherwise nobody, so that no innocent
%% class sharing the worker is refused.
-spec blame(non_neg_integer(), binary(), #{port() => port_info()}) -> binary() | none.
blame(_Busy, Spec, _Ports) when Spec =/= <<>> ->
    Spec;
blame(0, <<>>, Ports) ->
    case lists:usort([Spec || {_, Spec} <- maps:values(Ports)]) of
        [Spec] -> Spec;
        _ -> none
    end;
blame(_Busy, <<>>, _Ports) ->
    none.

%% The next spawn after the backoff: at once after a worker that lived, then doubling
%% from FIRST_BACKOFF_MS up to MAX_BACKOFF_MS while workers keep dying young.
-spec restart_later(#state{}) -> {noreply, #state{}}.
restart_later(S = #state{young_deaths = Young}) ->
    Delay = case Young of
                0 -> 0;
                _ -> min(?FIRST_BACKOFF_MS bsl min(Young - 1, 16), ?MAX_BACKOFF_MS)
            end,
    _ = erlang:start_timer(Delay, self(), respawn),
    {noreply, S#state{phase = restarting, os_pid = 0}}.

%% A raw wait status as the nanny reported it (-1: the nanny itself was killed).
-spec exit_of(integer()) -> exit().
exit_of(-1) -> unknown;
exit_of(Status) when Status band 16#7f =:= 0 -> {exit_status, (Status bsr 8) band 16#ff};
exit_of(Status) -> {signal, Status band 16#7f}.

-spec describe(exit()) -> string().
describe({exit_status, N}) -> io_lib:format("exited with status ~p", [N]);
describe({signal, 9}) -> "was killed by signal 9 (SIGKILL: killed, or out of memory)";
describe({signal, N}) -> io_lib:format("was killed by signal ~p~ts", [N, signal_name(N)]);
describe(unknown) -> "ended (its nanny was killed, so no status)".

-spec signal_name(pos_integer()) -> string().
signal_name(6) -> " (SIGABRT)";
signal_name(7) -> " (SIGBUS)";
signal_name(11) -> " (SIGSEGV)";
signal_name(15) -> " (SIGTERM)";
signal_name(_) -> "".

-spec group_name(#state{}) -> atom().
group_name(#state{group = #{name := Name}}) ->
    Name.

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
