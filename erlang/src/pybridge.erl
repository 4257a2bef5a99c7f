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
         load_driver/2, unload_driver/1, info/1, stats/0]).

-export_type([spec/0, open_option/0, error_reason/0]).

-type spec() :: string() | binary() | atom().
-type open_option() :: {timeout, 0..16#FFFFFFFF}
                     | {python_path, [file:filename()]}
                     | {worker_group, atom()}
                     | term().
-type error_reason() :: badarg
                      | {python, atom(), binary(), binary()}
                      | {pybridge, timeout | worker_down | no_worker | frame_too_large
                                   | start_failure | not_started | crash_loop | hung
                                   | worker_hung | protocol_error}.

%% @equiv open(Spec, "", Opts)
-spec open(spec(), [open_option()]) -> port().
open(Spec, Opts) ->
    open(Spec, "", Opts).

%% @doc Open a port served by an instance of Spec ("module:Class").
%% Args reach Driver.start(command). Opts are open_port options plus
%% {timeout, Ms} (0..4294967295), {python_path, Dirs} (a list of directories, each a
%% string, binary or atom) and {worker_group, Name} (a group of the app env worker_groups;
%% without it, the class's `worker_group' attribute, else `default'); anything else of
%% these, or Opts not a proper list, is badarg. A class whose workers kept dying is
%% refused for a while: {pybridge, crash_loop}.
-spec open(spec(), iodata(), [open_option()]) -> port().
open(Spec, Args, Opts) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    SpecS = spec_string(Spec),
    ArgsS = try binary_to_list(iolist_to_binary(Args)) catch error:_ -> error(badarg) end,
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
    case erlang:port_call(Port, ?PB_CALL_CONTROL, {Cmd, Data, self()}) of
        %% a long list-mode reply comes as a binary (docs/PROTOCOL.md): see string/1
        {ok, {string, Bin}} -> string(Bin);
        Answer -> unwrap(Answer)
    end;
control(_, _, _) ->
    error(badarg).

%% @doc erlang:port_call/3 that raises the Python error instead of a bare badarg.
-spec call(port(), non_neg_integer(), term()) -> term().
call(Port, Cmd, Term) when is_integer(Cmd), Cmd >= 0, Cmd < 16#FFFFFF00 ->
    unwrap(erlang:port_call(Port, ?PB_CALL_CALL, {Cmd, Term, self()}));
call(_, _, _) ->
    error(badarg).

%% @doc erlang:port_close/1: Driver.stop runs, the port is gone.
-spec close(port()) -> true.
close(Port) ->
    erlang:port_close(Port).

%% @doc Load the Python driver class Spec under its own driver name: then
%% open_port({spawn_driver, Name ++ " args"}, Opts) opens it, with the class's driver flags
%% (its `flags` attribute), and erlang:port_info(P, name) says Name.
-spec load_driver(string(), spec()) -> ok | {error, term()}.
load_driver(Name, Spec) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    SpecS = spec_string(Spec),
    (is_list(Name) andalso re:run(Name, "^[a-z][a-z0-9_]{0,63}$", [{capture, none}]) =:= match
     andalso Name =/= "pybridge") orelse error(badarg),
    pybridge_drivers:load(Name, SpecS).

%% @doc Unload a driver of load_driver/2: its ports exit with reason driver_unloaded.
-spec unload_driver(string()) -> ok | {error, term()}.
unload_driver(Name) ->
    pybridge_drivers:unload(Name).

%% @doc The port's counters, kept by the driver: callbacks forwarded by kind (output,
%% control, call, timeout), late_answers (control/call past the timeout),
%% bytes_to_python and bytes_from_python, output_queue (bytes waiting for the worker),
%% driver_queue (the ERTS queue), busy, os_pid, monitors, and latency_p50/p90/p99_us of
%% control and call (upper bounds of power-of-two buckets).
-spec info(port()) -> #{atom() => non_neg_integer()}.
info(Port) ->
    erlang:port_call(Port, ?PB_CALL_INFO, []).

%% @doc Per live worker: its group, its slot in the group, OS pid, resident memory (KiB)
%% and open ports. A worker that is restarting is not listed.
-spec stats() -> [#{atom() => atom() | non_neg_integer()}].
stats() ->
    [Stats || Pid <- pybridge_sup:managers(), {ok, Stats} <- [pybridge_manager:stats(Pid)]].

%% Why not the list's own ETF: port_call decodes it in one go, holding a scheduler, and it
%% is 2 bytes a byte. binary_to_list/1 yields; in a heap grown as it goes each collection
%% copies the list built so far (64 MiB: 6.6 s), so the heap is grown to the list's size
%% first (a cons is 2 words; 64 MiB: 1.3 s) and the caller's own minimum restored.
-spec string(binary()) -> string().
string(Bin) ->
    Old = process_flag(min_heap_size, 2 * byte_size(Bin) + 1024),
    erlang:garbage_collect(),
    try binary_to_list(Bin) after process_flag(min_heap_size, Old) end.

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

%% Directories travel percent-encoded so that spaces and ':' survive the command line.
-spec encode_paths([file:filename()]) -> string().
encode_paths(Paths) ->
    Joined = lists:join(":", [uri_string:quote(filename:absname(P), "/") || P <- Paths]),
    lists:flatten(Joined).
