%% @doc The manager port's ctl frames, built and read: no state, no processes.
%%
%% docs/PROTOCOL.md is normative ("Frame", "ctl channel opcodes", "Manager port controls").
%% Every message on the manager port is one frame; integers are big-endian and len counts
%% the bytes after itself:
%%
%%   0          4        5        6          10
%%   +----------+--------+--------+----------+----------------------+
%%   | len:u32  | op:u8  | fl:u8  | id:u32   | body: len - 6 bytes  |
%%   +----------+--------+--------+----------+----------------------+
%%
%% Bodies read and written here:
%%
%%   CTL_HELLO        worker -> Erlang   proto:u16, then the worker's package version
%%   CTL_LOG          worker -> Erlang   ETF of {Level, Message, Meta}
%%   CTL_WORKER_EXIT  C -> Erlang        status:i32, the wait status the nanny reported
%%                                       (-1: the nanny was killed, no status), busy:u32
%%                                       ports waiting for the worker, then the class
%%                                       of the one that waited longest (may be empty)
%%   CTL_CLASS_INFO   Erlang -> worker   the spec "module:Class" (id: the request)
%%                    worker -> Erlang   0:u8, flags:u32, callbacks:u32 (CB_*),
%%                                       worker_group (UTF-8, may be empty)
%%                                       | 1:u8, error message
%%   CTL_HUNG         worker -> Erlang   the spec whose callback hung the worker
%%   CTL_RELOAD       Erlang -> worker   phase:u8 (0 load, 1 commit, 2 abort), token:u64,
%%                                       then the module (load) or timeout_ms:u32 (commit)
%%                    worker -> Erlang   0:u8, then found:u32 (load), upgraded:u32, kept:u32
%%                                       and the ETF of the errors (commit), or nothing
%%                                       (abort) | 1:u8, the ETF of the load's error
%%   CTL_ERL_CALL     worker -> Erlang   timeout_ms:u32, ETF of {Module, Function, Args}
%%                                       (id: the call; FL_MORE: the body goes on in the
%%                                       next frame of that id)
%%   CTL_ERL_RESULT   Erlang -> worker   ETF of {ok, Result} | {error, Class, Reason,
%%                                       Stacktrace}, in pieces as CTL_ERL_CALL
%%
%% and the MGR_SPAWN control (erlang:port_control/3 on the manager port):
%%
%%   data   timeout_ms:u32, max_frame:u32, spin_us:u32, group:u32, the nanny's argv as
%%          NUL-terminated strings
%%   reply  os_pid:u32, worker_index:u32
-module(pybridge_ctl).

-include("pybridge_protocol.hrl").

-export([spawn_request/5, with_env/2, spawn_reply/1, class_info/2, reload/2,
         erl_result/2, decode/1]).
-export_type([event/0, reload_request/0, reload_answer/0]).

%% A CTL_RELOAD request (docs/PROTOCOL.md, "Reload"), and its answer.
-type reload_request() :: {load, Token :: non_neg_integer(), Module :: binary()}
                        | {commit, Token :: non_neg_integer(), TimeoutMs :: non_neg_integer()}
                        | {abort, Token :: non_neg_integer()}.
-type reload_answer() :: {ok, Found :: non_neg_integer()}
                       | {ok, Upgraded :: non_neg_integer(), Kept :: non_neg_integer(),
                          Errors :: [term()]}
                       | ok
                       | {error, term()}.

%% What the manager port says, as pybridge_manager handles it.
-type event() :: {hello, Proto :: non_neg_integer(), Version :: binary()}
               | {log, logger:level(), binary(), logger:metadata()}
               | {bad_log, {malformed, term()} | undecodable}
               | {worker_exit, Status :: integer(), Busy :: non_neg_integer(), Blame :: binary()}
               | {hung, Spec :: binary()}
               | {class_info, Id :: non_neg_integer(),
                  {ok, non_neg_integer(), non_neg_integer(), binary()} | {error, binary()}}
               | {reload, Id :: non_neg_integer(), reload_answer()}
               | {erl_call, Id :: non_neg_integer(), More :: boolean(), Piece :: binary()}
               | {unknown, Op :: byte()}.

%% @doc The MGR_SPAWN control data: the worker's limits and group, then the nanny's argv.
-spec spawn_request(non_neg_integer(), non_neg_integer(), non_neg_integer(),
                    non_neg_integer(), [unicode:chardata()]) -> iodata().
spawn_request(Timeout, MaxFrame, Spin, Group, Argv) ->
    [<<Timeout:32, MaxFrame:32, Spin:32, Group:32>>
     | [[unicode:characters_to_binary(A), 0] || A <- Argv]].

%% @doc The worker's argv under `env' when worker_env asks for changes: the worker inherits
%% the node's environment (posix_spawn with environ), env removes and sets variables and
%% then execs the worker in its place (the same pid). Unchanged when there are none.
-spec with_env([{string(), string() | false}], [string()]) -> [string()].
with_env([], Argv) ->
    Argv;
with_env(Env, Argv) ->
    EnvExe = case os:find_executable("env") of false -> "/usr/bin/env"; Path -> Path end,
    Unset = lists:append([["-u", N] || {N, false} <- Env]),
    [EnvExe | Unset] ++ [N ++ "=" ++ V || {N, V} <- Env, V =/= false] ++ Argv.

%% @doc The OS pid in the MGR_SPAWN reply (port_control answers a list).
-spec spawn_reply(string() | binary()) -> non_neg_integer().
spawn_reply(Reply) ->
    <<OsPid:32, _Slot:32>> = iolist_to_binary(Reply),
    OsPid.

%% @doc A CTL_CLASS_INFO request for the class Spec, answered under id Id.
-spec class_info(non_neg_integer(), unicode:chardata()) -> binary().
class_info(Id, Spec) ->
    frame(?CTL_CLASS_INFO, Id, unicode:characters_to_binary(Spec)).

%% @doc A CTL_RELOAD request, answered under id Id.
-spec reload(non_neg_integer(), reload_request()) -> binary().
reload(Id, {load, Token, Module}) ->
    frame(?CTL_RELOAD, Id, <<0, Token:64, Module/binary>>);
reload(Id, {commit, Token, Timeout}) ->
    frame(?CTL_RELOAD, Id, <<1, Token:64, Timeout:32>>);
reload(Id, {abort, Token}) ->
    frame(?CTL_RELOAD, Id, <<2, Token:64>>).

%% @doc The CTL_ERL_RESULT frames of call Id: its answer's ETF in pieces that each fit in
%% one ctl message, all but the last flagged FL_MORE.
-spec erl_result(non_neg_integer(), binary()) -> [binary()].
erl_result(Id, Etf) ->
    Max = ?MAX_CTL_MSG - 10,
    case Etf of
        <<Piece:Max/binary, Rest/binary>> when Rest =/= <<>> ->
            [frame(?CTL_ERL_RESULT, ?FL_MORE, Id, Piece) | erl_result(Id, Rest)];
        _ ->
            [frame(?CTL_ERL_RESULT, 0, Id, Etf)]
    end.

%% @doc One frame that came as manager port data.
-spec decode(binary()) -> event().
decode(<<_:32, ?CTL_HELLO, _:8, _:32, Proto:16, Version/binary>>) ->
    {hello, Proto, Version};
decode(<<_:32, ?CTL_LOG, _:8, _:32, Body/binary>>) ->
    try binary_to_term(Body) of
        {Level, Msg, Meta} when is_atom(Level), is_binary(Msg), is_map(Meta) ->
            {log, Level, Msg, Meta};
        Other ->
            {bad_log, {malformed, Other}}
    catch error:badarg ->
        {bad_log, undecodable}
    end;
decode(<<_:32, ?CTL_WORKER_EXIT, _:8, _:32, Status:32/signed, Busy:32, Blame/binary>>) ->
    {worker_exit, Status, Busy, Blame};
decode(<<_:32, ?CTL_HUNG, _:8, _:32, Spec/binary>>) ->
    {hung, Spec};
decode(<<_:32, ?CTL_CLASS_INFO, _:8, Id:32, 0, Flags:32, Callbacks:32, Group/binary>>) ->
    {class_info, Id, {ok, Flags, Callbacks, Group}};
decode(<<_:32, ?CTL_CLASS_INFO, _:8, Id:32, _Status, Message/binary>>) ->
    {class_info, Id, {error, Message}};
decode(<<_:32, ?CTL_RELOAD, _:8, Id:32, Answer/binary>>) ->
    {reload, Id, reload_answer(Answer)};
decode(<<_:32, ?CTL_ERL_CALL, Fl:8, Id:32, Piece/binary>>) ->
    {erl_call, Id, Fl band ?FL_MORE =/= 0, Piece};
decode(<<_:32, Op, _/binary>>) ->
    {unknown, Op}.

-spec reload_answer(binary()) -> reload_answer().
reload_answer(<<0>>) ->
    ok;
reload_answer(<<0, Found:32>>) ->
    {ok, Found};
reload_answer(<<0, Upgraded:32, Kept:32, Errors/binary>>) ->
    try binary_to_term(Errors) of
        List when is_list(List) -> {ok, Upgraded, Kept, List};
        Other -> {error, {malformed, Other}}
    catch error:badarg -> {error, undecodable}
    end;
reload_answer(<<1, Error/binary>>) ->
    try binary_to_term(Error) of
        Term -> {error, Term}
    catch error:badarg -> {error, undecodable}
    end;
reload_answer(_) ->
    {error, undecodable}.

-spec frame(byte(), non_neg_integer(), binary()) -> binary().
frame(Op, Id, Body) ->
    frame(Op, 0, Id, Body).

-spec frame(byte(), byte(), non_neg_integer(), binary()) -> binary().
frame(Op, Fl, Id, Body) ->
    <<(byte_size(Body) + 6):32, Op, Fl, Id:32, Body/binary>>.
