%% @doc The application's settings: the one module that reads the pybridge application
%% environment. Each setting is read when asked for (a changed value applies to what
%% starts next) and brought into its range here, so that no caller checks it again.
%%
%%   key          default                                   range
%%   python       false: $PYBRIDGE_PYTHON, else python3     a path, or a name found on PATH
%%   python_path  []                                        directories, made absolute
%%   pool_size    1                                         1 .. 64 (the C driver's slots)
%%   timeout      5000 (ms)                                 0 .. 4294967295 (sent as u32)
%%   max_frame    268435456 (bytes)                         64 .. 4294967295
%%   spin_us      50 (µs)                                   0 .. 10000
%%   worker_env   []                                        [{Name, Value | false}]
%%   worker_groups  #{}: Name => #{size, memory_limit}       size 1 .. 64, memory_limit 0
%%                (group `default' is pool_size workers)    (none) or 32 MiB .. 2^48; 64
%%                                                          workers in all, in name order
%%   crash_loop   #{deaths => 5, period => 10000,            deaths 1 .. 1000, period and
%%                  refuse => 30000}                        refuse (ms) 0 .. 86400000
%%   callback_limit 60000 (ms)                              100 .. 4294967295, or infinity
%%
%% An integer outside its range becomes the nearest bound; a value that is not an
%% integer gives the default; of a list, the entries of the wrong type are left out.
%% README.md's Configuration table says what each one does; the defaults and bounds
%% shared with C and Python are the limits of docs/PROTOCOL.md.
-module(pybridge_config).

-export([python/0, python_path/0, pool_size/0, timeout/0, max_frame/0, spin_us/0,
         worker_env/0, is_dir_name/1, worker_groups/0, group_index/1, crash_loop/0,
         callback_limit/0]).
-export_type([group/0]).

-include("pybridge_protocol.hrl").

-define(U32_MAX, 16#FFFFFFFF).
-define(MIN_MEMORY_LIMIT, 32 bsl 20).
-define(DAY_MS, 86400000).

%% A worker group: its name, its index on the wire (`-g', MGR_SPAWN), its size and its
%% workers' address-space limit in bytes (0: none).
-type group() :: #{name := atom(), index := non_neg_integer(), size := pos_integer(),
                   memory_limit := non_neg_integer()}.

%% @doc The interpreter that runs the workers, as a path when it is found on `PATH'.
-spec python() -> file:filename().
python() ->
    Configured = case application:get_env(pybridge, python, false) of
                     P when is_list(P), P =/= [] -> P;
                     P when is_binary(P), P =/= <<>> -> unicode:characters_to_list(P);
                     _ -> os:getenv("PYBRIDGE_PYTHON", "python3")
                 end,
    %% posix_spawn takes a path, not a name to look up
    case os:find_executable(Configured) of
        false -> Configured;
        Path -> Path
    end.

%% @doc The directories driver modules are imported from, absolute.
-spec python_path() -> [file:filename()].
python_path() ->
    [filename:absname(D) || D <- list(python_path), is_dir_name(D)].

%% @doc Variables to set ({Name, Value}) or to remove ({Name, false}) in the environment
%% the workers inherit from the node; Name and Value strings or binaries, Name a C
%% identifier, no NUL anywhere.
-spec worker_env() -> [{string(), string() | false}].
worker_env() ->
    [{chars(N), case V of false -> false; _ -> chars(V) end}
     || {N, V} <- list(worker_env),
        is_env_name(N), V =:= false orelse is_chars(V)].

%% @doc A directory as open's {python_path, _} and the app env take it: a non-empty
%% string, binary or atom, without NUL.
-spec is_dir_name(term()) -> boolean().
is_dir_name(D) when is_atom(D) -> D =/= '';
is_dir_name(D) -> is_chars(D) andalso D =/= "" andalso D =/= <<>>.

%% @doc How many Python workers the pool runs.
-spec pool_size() -> 1..?MAX_WORKERS.
pool_size() ->
    integer(pool_size, 1, 1, ?MAX_WORKERS).

%% @doc Milliseconds that open, control and call wait for Python.
-spec timeout() -> 0..?U32_MAX.
timeout() ->
    integer(timeout, ?DEFAULT_TIMEOUT_MS, 0, ?U32_MAX).

%% @doc The largest frame in bytes, either way.
-spec max_frame() -> ?MIN_MAX_FRAME..?U32_MAX.
max_frame() ->
    integer(max_frame, ?DEFAULT_MAX_FRAME, ?MIN_MAX_FRAME, ?U32_MAX).

%% @doc Microseconds a waiting side busy-polls before it sleeps.
-spec spin_us() -> 0..?MAX_SPIN_US.
spin_us() ->
    integer(spin_us, ?DEFAULT_SPIN_US, 0, ?MAX_SPIN_US).

%% @doc The worker groups, `default' first (index 0), then the others in name order,
%% cut so that they hold 64 workers in all (groups past the cut are left out).
-spec worker_groups() -> [group()].
worker_groups() ->
    Conf = case application:get_env(pybridge, worker_groups, #{}) of
               M when is_map(M) -> M;
               _ -> #{}
           end,
    Default = group_conf(maps:get(default, Conf, #{}), pool_size()),
    Others = lists:sort([{Name, group_conf(G, 1)} || {Name, G} <- maps:to_list(Conf),
                                                    is_atom(Name), Name =/= default]),
    fit([{default, Default} | Others], 0, ?MAX_WORKERS).

%% @doc The index of a configured group.
-spec group_index(atom()) -> {ok, non_neg_integer()} | error.
group_index(Name) ->
    case [I || #{name := N, index := I} <- worker_groups(), N =:= Name] of
        [I] -> {ok, I};
        [] -> error
    end.

%% @doc When a driver class is refused: Deaths of workers blamed on it within Period ms
%% refuse its opens for Refuse ms.
-spec crash_loop() -> #{deaths := pos_integer(), period := non_neg_integer(),
                        refuse := non_neg_integer()}.
crash_loop() ->
    C = case application:get_env(pybridge, crash_loop, #{}) of
            M when is_map(M) -> M;
            _ -> #{}
        end,
    #{deaths => clamp(maps:get(deaths, C, 5), 5, 1, 1000),
      period => clamp(maps:get(period, C, 10000), 10000, 0, ?DAY_MS),
      refuse => clamp(maps:get(refuse, C, 30000), 30000, 0, ?DAY_MS)}.

-spec group_conf(term(), pos_integer()) -> {pos_integer(), non_neg_integer()}.
group_conf(G, DefaultSize) when is_map(G) ->
    Limit = case maps:get(memory_limit, G, 0) of
                0 -> 0;
                L -> clamp(L, 0, ?MIN_MEMORY_LIMIT, 1 bsl 48)
            end,
    {clamp(maps:get(size, G, DefaultSize), DefaultSize, 1, ?MAX_WORKERS), Limit};
group_conf(_, DefaultSize) ->
    {DefaultSize, 0}.

-spec fit([{atom(), {pos_integer(), non_neg_integer()}}], non_neg_integer(),
          non_neg_integer()) -> [group()].
fit([{Name, {Size, Limit}} | Rest], Index, Left) when Left > 0 ->
    [#{name => Name, index => Index, size => min(Size, Left), memory_limit => Limit}
     | fit(Rest, Index + 1, Left - min(Size, Left))];
fit(_, _, _) ->
    [].

-spec clamp(term(), integer(), integer(), integer()) -> integer().
clamp(N, _Default, Min, Max) when is_integer(N) -> min(max(N, Min), Max);
clamp(_, Default, _Min, _Max) -> Default.

%% @doc Milliseconds a Python callback may run before it is hung (a class's own
%% callback_limit attribute wins).
-spec callback_limit() -> 100..?U32_MAX | infinity.
callback_limit() ->
    case application:get_env(pybridge, callback_limit, ?DEFAULT_CALLBACK_LIMIT_MS) of
        infinity -> infinity;
        _ -> integer(callback_limit, ?DEFAULT_CALLBACK_LIMIT_MS, 100, ?U32_MAX)
    end.

-spec integer(atom(), integer(), integer(), integer()) -> integer().
integer(Key, Default, Min, Max) ->
    clamp(application:get_env(pybridge, Key, Default), Default, Min, Max).

-spec list(atom()) -> list().
list(Key) ->
    case application:get_env(pybridge, Key, []) of
        L when is_list(L) -> proper(L);
        _ -> []
    end.

%% the elements of a list, up to an improper tail
-spec proper(maybe_improper_list()) -> list().
proper([H | T]) -> [H | proper(T)];
proper(_) -> [].

-spec is_chars(term()) -> boolean().
is_chars(B) when is_binary(B) ->
    is_list(unicode:characters_to_list(B)) andalso binary:match(B, <<0>>) =:= nomatch;
is_chars(L) when is_list(L) ->
    io_lib:char_list(L) andalso not lists:member(0, L);
is_chars(_) ->
    false.

-spec is_env_name(term()) -> boolean().
is_env_name(N) ->
    is_chars(N) andalso
        re:run(N, "^[A-Za-z_][A-Za-z0-9_]*$", [{capture, none}, unicode]) =:= match.

-spec chars(string() | binary()) -> string().
chars(S) -> unicode:characters_to_list(S).
