%% @doc The public API: open and use ports whose driver is a Python class.
%%
%% A port opened here is an ordinary port: the BIFs (port_command, port_control,
%% port_call, port_close, port_connect, port_info) work on it too. The functions
%% here add error terms: where a BIF can only say badarg, open/3, control/3 and call/3
%% raise one of error_reason():
%%   badarg, {python, Class, Message, Traceback}, {pybridge, timeout},
%%   {pybridge, worker_down}, {pybridge, no_worker}, {pybridge, frame_too_large},
%%   {pybridge, start_failure}, {pybridge, not_started}, {pybridge, crash_loop},
%%   {pybridge, hung}, {pybridge, worker_hung}, {pybridge, protocol_error}.
%% README.md and docs/TROUBLESHOOTING.md list the same set (pybridge_docs_tests checks it).
-module(pybridge).

-include("pybridge_protocol.hrl").

-export([open/2, open/3, command/2, command/3, control/3, call/3, close/1,
         load_driver/2, unload_driver/1, info/1, stats/0, reload/1]).
%% pools across a cluster: docs/CLUSTER.md
-export([start_pool/3, pool_spec/3, stop_pool/1, pool_call/3, pool_call/4, pool_control/3,
         pool_control/4, pool_command/2, pool_command/3, pool_info/1]).

-export_type([spec/0, open_option/0, error_reason/0, reload_counts/0]).

%% ms a reload waits for a worker beyond the bounds the worker keeps itself
-define(RELOAD_MARGIN_MS, 5000).

-type spec() :: string() | binary() | atom().
-type open_option() :: {timeout, 0..16#FFFFFFFF}
                     | {python_path, [file:filename()]}
                     | {worker_group, atom() | binary()}
                     | term().
%% The open ports of a reloaded module: switched to the new class, or left the old one.
-type reload_counts() :: #{upgraded := non_neg_integer(), kept := non_neg_integer()}.
-type error_reason() :: badarg
                      | {python, atom(), binary(), binary()}
                      | {pybridge, timeout | worker_down | no_worker | frame_too_large
                                   | start_failure | not_started | crash_loop | hung
                                   | worker_hung | protocol_error}.

%% @equiv open(Spec, "", Opts)
-spec open(spec(), [open_option()]) -> port().
open(Spec, Opts) ->
    open(Spec, "", Opts).

%% @doc Open a port served by an instance of Spec ("module:Class"; a string, binary or
%% atom). Args (iodata) reach Driver.start(command). Opts are open_port options plus
%% {timeout, Ms} (0..4294967295), {python_path, Dirs} (a list of directories, each a
%% string, binary or atom) and {worker_group, Name} (an atom or binary naming a group of
%% the app env worker_groups; without it, the class's `worker_group' attribute, else
%% `default'); anything else of these, or Opts not a proper list, is badarg. A class whose
%% workers kept dying is refused for a while: {pybridge, crash_loop}.
-spec open(spec(), iodata(), [open_option()]) -> port().
open(Spec, Args, Opts) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    SpecS = spec_string(Spec),
    ArgsS = args_chars(Args),
    is_proper_list(Opts) orelse error(badarg),
    {Mine, PortOpts} = lists:partition(fun is_own_option/1, Opts),
    Timeout = proplists:get_value(timeout, Mine, pybridge_config:timeout()),
    %% the driver and the worker read it as a u32: a larger one must not wrap
    (is_integer(Timeout) andalso Timeout >= 0 andalso Timeout =< 16#FFFFFFFF)
        orelse error(badarg),
    Paths = proplists:get_value(python_path, Mine, []),
    (is_proper_list(Paths) andalso lists:all(fun pybridge_config:is_dir_name/1, Paths))
        orelse error(badarg),
    Group = group_index(SpecS, proplists:get_value(worker_group, Mine, undefined)),
    pybridge_classes:refused(SpecS) andalso error({pybridge, crash_loop}),
    Token = erlang:unique_integer([positive]),
    %% -o: the opener's external form, so Python knows caller() in start without asking
    Me = binary:encode_hex(term_to_binary(self())),
    Cmd = lists:flatten(["pybridge -e ", integer_to_list(Token), " -o ", binary_to_list(Me),
                         " -t ", integer_to_list(Timeout),
                         [[" -g ", integer_to_list(Group)] || Group > 0],
                         [[" -p ", encode_paths(Paths)] || Paths =/= []],
                         " ", SpecS, [[" ", ArgsS] || ArgsS =/= ""]]),
    open_port_retrying(Cmd, PortOpts, Token, erlang:monotonic_time(millisecond) + Timeout).

%% @doc erlang:port_command/2.
-spec command(port(), iodata()) -> true.
command(Port, Data) ->
    erlang:port_command(Port, Data).

%% @doc erlang:port_command/3 (options force and nosuspend).
-spec command(port(), iodata(), [force | nosuspend]) -> boolean().
command(Port, Data, Opts) ->
    erlang:port_command(Port, Data, Opts).

%% @doc erlang:port_control/3 that raises the Python error instead of a bare badarg.
-spec control(port(), non_neg_integer(), iodata()) -> string() | binary().
control(Port, Cmd, Data) when is_integer(Cmd), Cmd >= 0, Cmd < 16#100000000 ->
    %% what port_control would refuse is refused here, before it crosses to Python
    try iolist_size(Data) catch error:badarg -> error(badarg) end,
    case request(Port, ?PB_CALL_CONTROL, {Cmd, Data, self()}) of
        %% a long list-mode reply comes as a binary (docs/PROTOCOL.md): see string/1
        {ok, {string, Bin}} -> string(Bin);
        Answer -> unwrap(Answer)
    end;
control(_, _, _) ->
    error(badarg).

%% @doc erlang:port_call/3 that raises the Python error instead of a bare badarg.
-spec call(port(), non_neg_integer(), term()) -> term().
call(Port, Cmd, Term) when is_integer(Cmd), Cmd >= 0, Cmd < 16#FFFFFF00 ->
    unwrap(request(Port, ?PB_CALL_CALL, {Cmd, Term, self()}));
call(_, _, _) ->
    error(badarg).

%% @doc erlang:port_close/1: Driver.stop runs, the port is gone.
-spec close(port()) -> true.
close(Port) ->
    erlang:port_close(Port).

%% @doc Load the Python driver class Spec under its own driver name (a string or a
%% binary): then open_port({spawn_driver, Name ++ " args"}, Opts) opens it, with the
%% class's driver flags (its `flags` attribute), and erlang:port_info(P, name) says Name.
-spec load_driver(string() | binary(), spec()) -> ok | {error, term()}.
load_driver(Name, Spec) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    SpecS = spec_string(Spec),
    NameS = name_string(Name),
    (is_list(NameS) andalso re:run(NameS, "^[a-z][a-z0-9_]{0,63}$", [{capture, none}]) =:= match
     andalso NameS =/= "pybridge") orelse error(badarg),
    pybridge_drivers:load(NameS, SpecS).

%% @doc Unload a driver of load_driver/2: its ports exit with reason driver_unloaded.
-spec unload_driver(string() | binary()) -> ok | {error, term()}.
unload_driver(Name) ->
    pybridge_drivers:unload(name_string(Name)).

%% @doc The port's counters, kept by the driver: callbacks forwarded by kind (output,
%% control, call, timeout), late_answers (control/call past the timeout),
%% bytes_to_python and bytes_from_python, output_queue (bytes waiting for the worker),
%% driver_queue (the ERTS queue), busy, os_pid, monitors, pending (pybridge:control/call
%% whose callers wait for Python's answer as a message), latency_p50/p90/p99_us of
%% control and call (upper bounds of power-of-two buckets), and atom_requests (the
%% worker's requests for atom indices, for replies holding big maps, docs/API.md).
-spec info(port()) -> #{atom() => non_neg_integer()}.
info(Port) ->
    erlang:port_call(Port, ?PB_CALL_INFO, []).

%% @doc Per live worker: its group, its slot in the group, OS pid, resident memory (KiB)
%% and open ports. A worker that is restarting is not listed.
-spec stats() -> [#{atom() => atom() | non_neg_integer()}].
stats() ->
    [Stats || Pid <- pybridge_sup:managers(), {ok, Stats} <- [pybridge_manager:stats(Pid)]].

%% @doc Reload the Python module Module (a string, binary or atom: "pkg.mod") in every
%% worker, in each import namespace that has it (the shared python_path, each open's
%% private one). Ports opened afterwards run the new code. An open port of a spec of that
%% module switches to its new class only if the class defines code_change(self, old) (an
%% instance made without start, given the old one); otherwise it keeps the old code until
%% it closes. {error, {python, ...}}: the new code failed to import in some worker and
%% nothing changed anywhere; {error, not_loaded}: no worker has imported it;
%% {error, {code_change, Errors, Counts}}: the module was reloaded, but the ports whose
%% code_change raised (or did not run within the app env timeout) kept their old instance
%% (counted in kept). docs/API.md, "Hot code reload".
-spec reload(string() | binary() | atom()) ->
    {ok, reload_counts()}
    | {error, not_loaded | {python, atom(), binary(), binary()} | {pybridge, timeout}
              | {code_change, [error_reason()], reload_counts()}}.
reload(Module) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    Name = module_name(Module),
    Token = erlang:unique_integer([positive]),
    Managers = pybridge_sup:managers(),
    Wait = case pybridge_config:callback_limit() of
               infinity -> infinity;
               %% a callback may be running first, then the module's own code
               Limit -> 2 * Limit + ?RELOAD_MARGIN_MS
           end,
    Loads = ask_all(Managers, {load, Token, Name}, Wait),
    Found = lists:sum([N || {ok, N} <- Loads]),
    case [E || {error, E} <- Loads, E =/= restarting, E =/= worker_down] of
        [Error | _] ->
            _ = ask_all(Managers, {abort, Token}, Wait),
            {error, Error};
        [] when Found =:= 0 ->
            _ = ask_all(Managers, {abort, Token}, Wait),
            {error, not_loaded};
        [] ->
            Timeout = pybridge_config:timeout(),
            Commits = ask_all(Managers, {commit, Token, Timeout},
                              case Wait of infinity -> infinity; _ -> Timeout + Wait end),
            ok = pybridge_classes:forget_groups(Name),
            upgraded(Commits, 0, 0, [])
    end.

%% One reload request to each manager at once; their answers in the same order
%% ({error, {pybridge, timeout}} for one that did not come within Wait ms).
-spec ask_all([pid()], pybridge_ctl:reload_request(), timeout()) -> [term()].
ask_all(Managers, Request, Wait) ->
    Ids = [pybridge_manager:reload(M, Request) || M <- Managers],
    [case gen_server:receive_response(Id, Wait) of
         {reply, Answer} -> Answer;
         timeout -> {error, {pybridge, timeout}};
         {error, _} -> {error, worker_down}        % the manager itself went away
     end || Id <- Ids].

-spec upgraded([term()], non_neg_integer(), non_neg_integer(), [term()]) ->
    {ok, reload_counts()} | {error, {code_change, [error_reason()], reload_counts()}}.
upgraded([{ok, U, K, Errors} | Rest], Up, Kept, Errs) ->
    upgraded(Rest, Up + U, Kept + K, Errs ++ Errors);
upgraded([{error, E} | Rest], Up, Kept, Errs) when E =:= restarting; E =:= worker_down ->
    %% its ports exited with it; a new worker imports the new code
    upgraded(Rest, Up, Kept, Errs);
upgraded([{error, E} | Rest], Up, Kept, Errs) ->
    upgraded(Rest, Up, Kept, Errs ++ [E]);
upgraded([], Up, Kept, []) ->
    {ok, #{upgraded => Up, kept => Kept}};
upgraded([], Up, Kept, Errs) ->
    {error, {code_change, Errs, #{upgraded => Up, kept => Kept}}}.

%% @doc Start the members of Pool on this node: `size' ports of Spec (default 1), opened
%% with `args' and `timeout' and `open_options', each taking at most `max_queue' calls
%% behind the one it runs (default 16); `prefer' (local or least_loaded) is how calls made
%% on this node are routed. See pybridge_pool:start/3.
-spec start_pool(atom(), spec(), pybridge_pool:option()) -> {ok, pid()} | {error, term()}.
start_pool(Pool, Spec, Opts) ->
    pybridge_pool:start(Pool, Spec, Opts).

%% @doc The same as start_pool/3, as a child spec for a supervisor of the caller's.
-spec pool_spec(atom(), spec(), pybridge_pool:option()) -> supervisor:child_spec().
pool_spec(Pool, Spec, Opts) ->
    pybridge_pool:spec(Pool, Spec, Opts).

%% @doc Stop the members of Pool on this node (started by start_pool/3).
-spec stop_pool(atom()) -> ok | {error, not_found}.
stop_pool(Pool) ->
    pybridge_pool:stop(Pool).

%% @equiv pool_call(Pool, Cmd, Term, #{})
-spec pool_call(atom(), non_neg_integer(), term()) -> term().
pool_call(Pool, Cmd, Term) ->
    pool_call(Pool, Cmd, Term, #{}).

%% @doc call/3 on one member of Pool, on any node; raises pybridge_pool:error_reason().
%% Opts: retry, wait, timeout (pybridge_pool:call/3).
-spec pool_call(atom(), non_neg_integer(), term(), pybridge_pool:call_option()) -> term().
pool_call(Pool, Cmd, Term, Opts) when is_integer(Cmd), Cmd >= 0, Cmd < 16#FFFFFF00 ->
    pybridge_pool:call(Pool, {call, Cmd, Term}, Opts);
pool_call(_, _, _, _) ->
    error(badarg).

%% @equiv pool_control(Pool, Cmd, Data, #{})
-spec pool_control(atom(), non_neg_integer(), iodata()) -> string() | binary().
pool_control(Pool, Cmd, Data) ->
    pool_control(Pool, Cmd, Data, #{}).

%% @doc control/3 on one member of Pool: a string, or a binary if the driver set
%% PORT_CONTROL_FLAG_BINARY.
-spec pool_control(atom(), non_neg_integer(), iodata(), pybridge_pool:call_option()) ->
          string() | binary().
pool_control(Pool, Cmd, Data, Opts) when is_integer(Cmd), Cmd >= 0, Cmd < 16#100000000 ->
    pybridge_pool:call(Pool, {control, Cmd, Data}, Opts);
pool_control(_, _, _, _) ->
    error(badarg).

%% @equiv pool_command(Pool, Data, #{})
-spec pool_command(atom(), iodata()) -> ok.
pool_command(Pool, Data) ->
    pool_command(Pool, Data, #{}).

%% @doc port_command/2 on one member of Pool: ok once that port has taken Data. Members
%% whose ports are busy hold it in their queues; full ones make it overloaded.
-spec pool_command(atom(), iodata(), pybridge_pool:call_option()) -> ok.
pool_command(Pool, Data, Opts) ->
    pybridge_pool:call(Pool, {command, Data}, Opts).

%% @doc The members of Pool on every node, with their calls in flight, queued, served and
%% restarts (pybridge_pool:info/1).
-spec pool_info(atom()) -> pybridge_pool:info().
pool_info(Pool) ->
    pybridge_pool:info(Pool).

%% Why not the list's own ETF: port_call decodes it in one go, holding a scheduler, and it
%% is 2 bytes a byte. binary_to_list/1 yields; in a heap grown as it goes each collection
%% copies the list built so far (64 MiB: 6.6 s), so the heap is grown to the list's size
%% first (a cons is 2 words; 64 MiB: 1.3 s) and the caller's own minimum restored.
-spec string(binary()) -> string().
string(Bin) ->
    Old = process_flag(min_heap_size, 2 * byte_size(Bin) + 1024),
    erlang:garbage_collect(),
    try binary_to_list(Bin) after process_flag(min_heap_size, Old) end.

%% A wrapped request (docs/PROTOCOL.md, "Pending requests"). One that Python does not
%% answer within the driver's spin comes back pending: the answer is a message, waited for
%% here with the scheduler free, bounded by the port's timeout; the port's end meanwhile is
%% its {pybridge, _} reason, or badarg, as port_call on a closed port.
-spec request(port(), ?PB_CALL_CONTROL | ?PB_CALL_CALL, tuple()) ->
          {ok, term()} | {error, error_reason()}.
request(Port, Op, Arg) ->
    case erlang:port_call(Port, Op, Arg) of
        {pybridge_pending, Id, Ms} ->
            Mon = erlang:monitor(port, Port),
            receive
                {pybridge_reply, Port, Id, Answer} ->
                    erlang:demonitor(Mon, [flush]),
                    Answer;
                {'DOWN', Mon, _, _, Why} ->          % (its type says process in OTP 25)
                    receive {pybridge_reply, Port, Id, Answer} -> Answer
                    after 0 -> {error, ended(Why)}
                    end
            after Ms ->
                erlang:demonitor(Mon, [flush]),
                _ = (catch erlang:port_call(Port, ?PB_CALL_FORGET, <<Id:32>>)),
                %% an answer sent before the driver forgot is in the mailbox by now
                receive {pybridge_reply, Port, Id, Answer} -> Answer
                after 0 -> {error, {pybridge, timeout}}
                end
            end;
        Answer ->
            Answer
    end.

-spec ended(term()) -> error_reason().
ended({pybridge, _} = Why) -> Why;
ended(_) -> badarg.

-spec unwrap({ok, Reply} | {error, error_reason()}) -> Reply.
unwrap({ok, Reply}) -> Reply;
unwrap({error, Reason}) -> error(Reason).

-spec open_port_retrying(string(), list(), pos_integer(), integer()) -> port().
open_port_retrying(Cmd, PortOpts, Token, Deadline) ->
    try
        open_port({spawn_driver, Cmd}, PortOpts)
    catch error:badarg ->
        receive
            {pybridge_open_error, Token, {pybridge, no_worker}} ->
                %% Why retry: a worker that just died is being restarted by its supervisor.
                erlang:monotonic_time(millisecond) < Deadline orelse error({pybridge, no_worker}),
                timer:sleep(20),
                open_port_retrying(Cmd, PortOpts, Token, Deadline);
            {pybridge_open_error, Token, Reason} ->
                error(Reason)
        after 0 ->
            error(badarg)
        end
    end.

-spec is_proper_list(term()) -> boolean().
is_proper_list([_ | T]) -> is_proper_list(T);
is_proper_list(L) -> L =:= [].
%% The wire index of the port's worker group: the option's, else the class attribute's
%% (asked once of a worker of the default group, then remembered), else 0 (`default').
-spec group_index(string(), term()) -> non_neg_integer().
group_index(Spec, Name) when is_binary(Name) ->
    %% an Elixir string names a configured group; no atom is made from it
    case [G || #{name := G} <- pybridge_config:worker_groups(), atom_to_binary(G) =:= Name] of
        [G] -> group_index(Spec, G);
        [] -> error(badarg)
    end;
group_index(_Spec, Name) when is_atom(Name), Name =/= undefined ->
    case pybridge_config:group_index(Name) of
        {ok, I} -> I;
        error -> error(badarg)
    end;
group_index(Spec, undefined) ->
    case pybridge_classes:group(Spec) of
        {ok, Name} -> group_index(Spec, Name);
        error -> group_index(Spec, class_group(Spec))
    end;
group_index(_Spec, _) ->
    error(badarg).

-spec class_group(string()) -> atom().
class_group(Spec) ->
    Answer = case pybridge_sup:managers(default) of
                 [M | _] -> pybridge_manager:class_info(M, Spec);
                 [] -> {error, restarting}
             end,
    case Answer of
        {ok, _Flags, _Callbacks, <<>>} -> remember(Spec, default);
        {ok, _Flags, _Callbacks, Name} ->
            case [G || #{name := G} <- pybridge_config:worker_groups(), atom_to_binary(G) =:= Name] of
                [G] -> remember(Spec, G);
                [] -> error(badarg)
            end;
        %% not importable here (only through the open's python_path): the option decides
        {error, Why} when is_binary(Why) -> remember(Spec, default);
        {error, _} -> default
    end.

-spec remember(string(), atom()) -> atom().
remember(Spec, Group) ->
    ok = pybridge_classes:remember_group(Spec, Group),
    Group.

-spec is_own_option(term()) -> boolean().
is_own_option({timeout, _}) -> true;
is_own_option({python_path, _}) -> true;
is_own_option({worker_group, _}) -> true;
is_own_option(_) -> false.

-spec module_name(term()) -> binary().
module_name(Module) when is_atom(Module) -> module_name(atom_to_binary(Module));
module_name(Module) when is_list(Module) ->
    module_name(try list_to_binary(Module) catch error:badarg -> error(badarg) end);
module_name(Module) when is_binary(Module), byte_size(Module) > 4096 ->
    %% no file system names a module that long; the request must fit one ctl message
    error(badarg);
module_name(Module) when is_binary(Module) ->
    case re:run(Module, "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$",
                [{capture, none}]) of
        match -> Module;
        nomatch -> error(badarg)
    end;
module_name(_) ->
    error(badarg).

-spec spec_string(term()) -> string().
spec_string(Spec) when is_atom(Spec) -> spec_string(atom_to_list(Spec));
spec_string(Spec) when is_binary(Spec) -> spec_string(binary_to_list(Spec));
spec_string(Spec) when is_list(Spec) ->
    case io_lib:printable_latin1_list(Spec) andalso
         re:run(Spec, "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
                [{capture, none}]) of
        match -> Spec;
        _ -> error(badarg)
    end;
spec_string(_) ->
    error(badarg).

%% Args as open_port must be given them for Python to read their UTF-8: ERTS writes a
%% spawn_driver command in the VM's native file name encoding (latin1 under LANG=C). Args
%% are characters (an Elixir string, a charlist) or, where they are no UTF-8, bytes.
-spec args_chars(term()) -> string().
args_chars(Args) ->
    Utf8 = try unicode:characters_to_binary(Args) of
               B when is_binary(B) -> B;
               _ -> iolist_to_binary(Args)
           catch error:badarg -> try iolist_to_binary(Args) catch error:_ -> error(badarg) end
           end,
    case {file:native_name_encoding(), unicode:characters_to_list(Utf8)} of
        {utf8, Chars} when is_list(Chars) -> Chars;
        _ -> binary_to_list(Utf8)
    end.

%% A driver name: a binary (an Elixir string) becomes the string erl_ddll knows it by.
-spec name_string(term()) -> term().
name_string(Name) when is_binary(Name) ->
    case unicode:characters_to_list(Name) of
        L when is_list(L) -> L;
        _ -> error(badarg)
    end;
name_string(Name) ->
    Name.

%% Directories travel percent-encoded so that spaces and ':' survive the command line; a
%% binary (an Elixir string) is quoted to a binary, flattened here to the string it spells.
-spec encode_paths([file:filename()]) -> string().
encode_paths(Paths) ->
    Joined = lists:join(":", [unicode:characters_to_list(uri_string:quote(filename:absname(P), "/"))
                              || P <- Paths]),
    lists:flatten(Joined).
