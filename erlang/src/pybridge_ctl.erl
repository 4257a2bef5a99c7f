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
%%
%% and the MGR_SPAWN control (erlang:port_control/3 on the manager port):
%%
%%   data   timeout_ms:u32, max_frame:u32, spin_us:u32, group:u32, the nanny's argv as
%%          NUL-terminated strings
%%   reply  os_pid:u32, worker_index:u32
-module(pybridge_ctl).

-include("pybridge_protocol.hrl").

-export([spawn_request/5, with_env/2, spawn_reply/1, class_info/2, decode/1]).
-export_type([event/0]).

%% What the manager port says, as pybridge_manager handles it.
-type event() :: {hello, Proto :: non_neg_integer(), Version :: binary()}
               | {log, logger:level(), binary(), logger:metadata()}
               | {bad_log, {malformed, term()} | undecodable}
               | {worker_exit, Status :: integer(), Busy :: non_neg_integer(), Blame :: binary()}
               | {hung, Spec :: binary()}
               | {class_info, Id :: non_neg_integer(),
                  {ok, non_neg_integer(), non_neg_integer(), binary()} | {error, binary()}}
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
decode(<<_:32, Op, _/binary>>) ->
    {unknown, Op}.

-spec frame(byte(), non_neg_integer(), binary()) -> binary().
frame(Op, Id, Body) ->
    <<(byte_size(Body) + 6):32, Op, 0, Id:32, Body/binary>>.
