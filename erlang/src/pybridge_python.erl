%% @doc ErlPort's `python' module on pybridge: start/0,1, start_link/0,1, call/4,5, cast/2 and stop/1 with
%% ErlPort's shapes, so that code moving off ErlPort changes a module name
%% (docs/MIGRATING_FROM_ERLPORT.md).
%%
%% An instance is a pybridge port of the built-in generic driver `pybridge.erlport:Python'
%% (pybridge/_api/python_calls.py): call/4 imports Module from the instance's python_path
%% (then from wherever Python finds it) and returns Function(*Args); a Python exception is
%% error({python, Class, Message, Traceback}), as pybridge's. cast/2 sends a message to the
%% instance, which hands it to the handler a Python function set with
%% pybridge.erlport.set_message_handler (dropped while there is none), as ErlPort's cast.
%%
%% Why calls go as port data and not port_call: the Python function runs where no
%% scheduler waits for it, so it may call Erlang back (pybridge.erlport.call), as ErlPort
%% functions do; the caller waits in a receive, for a proxy process that watches the port.
-module(pybridge_python).

-export([start/0, start/1, start_link/0, start_link/1, call/4, call/5, cast/2, stop/1]).
-export_type([instance/0, option/0]).

-define(SPEC, "pybridge.erlport:Python").

-type instance() :: port().
-type option() :: {python_path, file:filename() | [file:filename()]}
                | {python, file:filename()}.

%% @doc start([]).
-spec start() -> {ok, instance()} | {error, term()}.
start() ->
    start([]).

%% @doc A new instance, not linked to the caller (as ErlPort's): it lives until stop/1 or
%% its worker's end. Options: {python_path, Dirs} (a directory, `:'-separated directories,
%% or a list of them: where call/4 imports modules from first) and {python, Path}, which
%% must name the interpreter the node's workers run (app env `python'): pybridge runs one
%% per node.
-spec start([option()]) -> {ok, instance()} | {error, term()}.
start(Options) when is_list(Options) ->
    case start_link(Options) of
        {ok, Instance} ->
            unlink(Instance),
            {ok, Instance};
        Error ->
            Error
    end.

%% @doc start_link([]).
-spec start_link() -> {ok, instance()} | {error, term()}.
start_link() ->
    start_link([]).

%% @doc As start/1, linked to the caller: the instance closes when the caller exits, and
%% the caller gets the instance's exit signal ({pybridge, worker_down}, ...).
-spec start_link([option()]) -> {ok, instance()} | {error, term()}.
start_link(Options) when is_list(Options) ->
    try
        Paths = paths(proplists:get_value(python_path, Options, [])),
        ok = same_python(proplists:get_value(python, Options, default)),
        Opts = [binary | [{python_path, Paths} || Paths =/= []]],
        {ok, pybridge:open(?SPEC, Opts)}
    catch
        throw:Reason -> {error, Reason};
        error:Reason -> {error, Reason}
    end.

%% @doc call(Instance, Module, Function, Args, []).
-spec call(instance(), atom(), atom(), list()) -> term().
call(Instance, Module, Function, Args) ->
    call(Instance, Module, Function, Args, []).

%% @doc Module.Function(*Args) in the instance's Python: its result. Options:
%% {timeout, Ms | infinity} (default infinity, as ErlPort's; {pybridge, timeout} after it).
%% A Python exception is error({python, Class, Message, Traceback}); an instance that
%% ends meanwhile (stop/1, the worker's death) is error({instance_down, Reason}); a closed
%% one badarg. The worker's callback_limit bounds a function that never returns.
-spec call(instance(), atom(), atom(), list(), [{timeout, timeout()}]) -> term().
call(Instance, Module, Function, Args, Options)
  when is_port(Instance), is_atom(Module), is_atom(Function), is_list(Args) ->
    Timeout = proplists:get_value(timeout, Options, infinity),
    Caller = self(),
    Tag = make_ref(),
    Request = {call, Module, Function, Args},
    {Proxy, Ref} = spawn_monitor(fun() -> proxy(Caller, Tag, Instance, Request) end),
    receive
        {Tag, {ok, Result}} ->
            erlang:demonitor(Ref, [flush]),
            Result;
        {Tag, {error, Error}} ->
            erlang:demonitor(Ref, [flush]),
            error(Error);
        {'DOWN', Ref, process, Proxy, Reason} ->
            error(Reason)
    after Timeout ->
        exit(Proxy, kill),
        erlang:demonitor(Ref, [flush]),
        error({pybridge, timeout})
    end.

%% @doc Send Message to the instance: its message handler gets it. Always ok, as ErlPort's.
-spec cast(instance(), term()) -> ok.
cast(Instance, Message) when is_port(Instance) ->
    try erlang:port_command(Instance, term_to_binary({cast, Message})) of
        true -> ok
    catch error:badarg -> ok
    end.

%% @doc End the instance (its port closes). Always ok.
-spec stop(instance()) -> ok.
stop(Instance) when is_port(Instance) ->
    catch pybridge:close(Instance),
    ok.

%% The one process that gets the instance's answer: a late one dies with it.
-spec proxy(pid(), reference(), instance(), tuple()) -> ok.
proxy(Caller, Tag, Instance, {call, M, F, A}) ->
    Ref = erlang:monitor(port, Instance),
    try erlang:port_command(Instance, term_to_binary({call, self(), M, F, A}))
    catch error:badarg -> exit(badarg)
    end,
    receive
        {pybridge_python, ok, Result} -> Caller ! {Tag, {ok, Result}}, ok;
        {pybridge_python, error, Error} -> Caller ! {Tag, {error, Error}}, ok;
        {'DOWN', Ref, _, Instance, Reason} -> exit({instance_down, Reason})
    end.

-spec paths(term()) -> [file:filename()].
paths([]) ->
    [];
paths(Path) when is_binary(Path) ->
    paths(binary_to_list(Path));
paths(Path = [C | _]) when is_integer(C) ->
    string:lexemes(Path, ":");
paths(Paths) when is_list(Paths) ->
    [case P of B when is_binary(B) -> binary_to_list(B); _ -> P end || P <- Paths];
paths(Other) ->
    throw({invalid_option, {python_path, Other}}).

%% pybridge runs one interpreter per node: another one cannot be had per instance.
-spec same_python(default | file:filename()) -> ok.
same_python(default) ->
    ok;
same_python(Python) ->
    Running = pybridge_config:python(),
    case resolve(Python) =:= resolve(Running) of
        true -> ok;
        false -> throw({other_python, Python, Running})
    end.

-spec resolve(file:filename()) -> file:filename().
resolve(Python) ->
    Found = case os:find_executable(Python) of false -> Python; Path -> Path end,
    case file:read_link_all(Found) of
        {ok, Target} -> filename:absname(Target, filename:dirname(Found));
        {error, _} -> filename:absname(Found)
    end.
