%% @doc Why the first worker could not start, as a reason that names what to fix: the
%% interpreter that is missing, or that lacks the pybridge package of this node's protocol.
%%
%% Why after the failure and not before every start: the check runs the interpreter once
%% more (a tenth of a second), which a start that works should not pay. The reasons of a
%% start that fails are start_reason() here; docs/TROUBLESHOOTING.md lists the same set
%% (pybridge_docs_tests checks it).
-module(pybridge_diagnose).

-include("pybridge_protocol.hrl").

-export([python_found/1, worker_exited/3]).
-export_type([start_reason/0]).

%% Each reason the application's start can fail with, inside
%% {pybridge, {{shutdown, {failed_to_start_child, Id, Reason}}, _}} (a worker's) or
%% {pybridge, {Reason, _}} (the driver's).
-type start_reason() :: {driver_load_failed, file:filename(), string()}
                      | {python_not_found, file:filename()}
                      | {python_without_pybridge, file:filename()}
                      | {pybridge_spawn_failed, [string()]}
                      | {pybridge_worker_exited, pybridge_manager:exit()}
                      | {pybridge_protocol_mismatch, list()}
                      | pybridge_hello_timeout.

%% How long the check may take: an interpreter that hangs at start-up is not this check's
%% to diagnose (pybridge_hello_timeout is).
-define(CHECK_MS, 10000).

%% It imports the package as the worker does (the node's working directory, the worker's
%% environment) and prints its protocol version. Python 2 syntax too: /usr/bin/python may
%% be one.
-define(CHECK,
        "import sys\n"
        "try:\n"
        "    from pybridge._wire.protocol import PROTOCOL_VERSION\n"
        "except BaseException as e:\n"
        "    sys.stdout.write('%s: %s' % (type(e).__name__, e))\n"
        "    sys.exit(1)\n"
        "sys.stdout.write('protocol %d' % PROTOCOL_VERSION)\n").

%% @doc ok when Python names an executable (a path, or a name on PATH), else the reason.
-spec python_found(file:filename()) -> ok | {python_not_found, file:filename()}.
python_found(Python) ->
    case os:find_executable(Python) of
        false -> {python_not_found, Python};
        _ -> ok
    end.

%% @doc The reason for a worker that ended, as Exit says, before its handshake: the
%% interpreter is missing, or cannot import pybridge of this protocol version (each logged
%% with what it said and the fix), else {pybridge_worker_exited, Exit}.
-spec worker_exited(file:filename(), [{string(), string() | false}], pybridge_manager:exit()) ->
    start_reason().
worker_exited(Python, Env, Exit) ->
    case python_found(Python) of
        ok -> checked(Python, check(Python, Env), Exit);
        NotFound -> NotFound
    end.

-spec checked(file:filename(), {ok | error, binary()} | timeout, pybridge_manager:exit()) ->
    start_reason().
checked(Python, {ok, <<"protocol ", P/binary>>}, Exit) ->
    case P =:= integer_to_binary(?PB_PROTOCOL_VERSION) of
        true -> {pybridge_worker_exited, Exit};
        false ->
            without(Python, io_lib:format("has the pybridge package of protocol version ~ts; "
                                          "this node's driver speaks ~p",
                                          [P, ?PB_PROTOCOL_VERSION])),
            {python_without_pybridge, Python}
    end;
checked(Python, {error, Said}, _Exit) ->
    without(Python, io_lib:format("cannot import pybridge (~ts)", [Said])),
    {python_without_pybridge, Python};
checked(_Python, _, Exit) ->
    {pybridge_worker_exited, Exit}.

-spec without(file:filename(), iodata()) -> ok.
without(Python, What) ->
    logger:error("pybridge: the interpreter ~ts ~ts. Install the pybridge Python package of "
                 "this node's pybridge into it (~ts -m pip install /path/to/pybridge, or its "
                 "virtualenv's pip), or set the application's python (or $PYBRIDGE_PYTHON) to "
                 "the interpreter of a virtualenv that has it", [Python, What, Python]).

%% The check's output and whether it exited 0; timeout if it did not end in time.
-spec check(file:filename(), [{string(), string() | false}]) ->
    {ok | error, binary()} | timeout.
check(Python, Env) ->
    Port = open_port({spawn_executable, os:find_executable(Python)},
                     [{args, ["-c", ?CHECK]}, {env, Env}, exit_status, stderr_to_stdout,
                      binary, hide]),
    collect(Port, [], erlang:monotonic_time(millisecond) + ?CHECK_MS).

-spec collect(port(), iodata(), integer()) -> {ok | error, binary()} | timeout.
collect(Port, Acc, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, D}} -> collect(Port, [Acc, D], Deadline);
        {Port, {exit_status, 0}} -> {ok, iolist_to_binary(Acc)};
        {Port, {exit_status, _}} -> {error, string:trim(iolist_to_binary(Acc))}
    after Left ->
        {os_pid, OsPid} = erlang:port_info(Port, os_pid),
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        catch port_close(Port),
        timeout
    end.
