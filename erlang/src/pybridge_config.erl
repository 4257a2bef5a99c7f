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
%%   callback_limit 60000 (ms)                              100 .. 4294967295, or infinity
%%
%% An integer outside its range becomes the nearest bound; a value that is not an
%% integer gives the default. README.md's Configuration table says what each one does.
-module(pybridge_config).

-export([python/0, python_path/0, pool_size/0, timeout/0, max_frame/0, spin_us/0,
         callback_limit/0]).

-define(U32_MAX, 16#FFFFFFFF).

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
    case application:get_env(pybridge, python_path, []) of
        Dirs when is_list(Dirs) -> [filename:absname(D) || D <- Dirs];
        _ -> []
    end.

%% @doc How many Python workers the pool runs.
-spec pool_size() -> 1..64.
pool_size() ->
    integer(pool_size, 1, 1, 64).

%% @doc Milliseconds that open, control and call wait for Python.
-spec timeout() -> 0..?U32_MAX.
timeout() ->
    integer(timeout, 5000, 0, ?U32_MAX).

%% @doc The largest frame in bytes, either way.
-spec max_frame() -> 64..?U32_MAX.
max_frame() ->
    integer(max_frame, 256 bsl 20, 64, ?U32_MAX).

%% @doc Microseconds a waiting side busy-polls before it sleeps.
-spec spin_us() -> 0..10000.
spin_us() ->
    integer(spin_us, 50, 0, 10000).

%% @doc Milliseconds a Python callback may run before it is hung (a class's own
%% callback_limit attribute wins).
-spec callback_limit() -> 100..?U32_MAX | infinity.
callback_limit() ->
    case application:get_env(pybridge, callback_limit, 60000) of
        infinity -> infinity;
        _ -> integer(callback_limit, 60000, 100, ?U32_MAX)
    end.

-spec integer(atom(), integer(), integer(), integer()) -> integer().
integer(Key, Default, Min, Max) ->
    case application:get_env(pybridge, Key, Default) of
        N when is_integer(N) -> min(max(N, Min), Max);
        _ -> Default
    end.
