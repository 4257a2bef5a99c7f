%% @doc A project that uses pybridge: its Python driver ships in priv/py.
-module(rebar3_app).

-export([open/0, roundtrip/0]).

%% @doc A port served by priv/py/shout.py. python_path names the directory per port, so it
%% follows the application wherever it is installed (_build, a release).
-spec open() -> port().
open() ->
    Py = filename:join(code:priv_dir(rebar3_app), "py"),
    pybridge:open("shout:Shout", [binary, {python_path, [Py]}]).

%% @doc One command and one control: {OutputOfCommand, ControlReply}.
-spec roundtrip() -> {binary() | timeout, string()}.
roundtrip() ->
    Port = open(),
    true = pybridge:command(Port, <<"hello">>),
    Out = receive {Port, {data, D}} -> D after 5000 -> timeout end,
    Reply = pybridge:control(Port, 1, <<"hello">>),
    true = pybridge:close(Port),
    {Out, Reply}.
