%% How `make bench` measures: windows of at least MIN_US and a number of operations, with
%% the CPU time that the node and the worker spent in them, from /proc/PID/stat (utime +
%% stime, counted in clock ticks: the windows are long enough for that to be precise).
-module(pb_bench_measure).
-export([measure/3, until/2, with_cpu/2, per_s/1, ops/1, us/1, node_os_pid/0, cpu_us/1, now_us/0]).
-export_type([window/0]).

-define(MIN_US, 500000).

%% Operations done, wall-clock us, CPU us of the node and of the worker (none: no worker).
-type window() :: #{ops := pos_integer(), us := pos_integer(), node := number(),
                    worker := number() | none}.
-type worker() :: non_neg_integer() | none.

%% Calls Op() until at least MinOps operations are done and MIN_US have passed. Op returns
%% {Operations it did, Sample}; the samples other than none come back in a list.
-spec measure(worker(), pos_integer(), fun(() -> {pos_integer(), term()})) -> {[term()], window()}.
measure(Worker, MinOps, Op) ->
    until(Worker, fun(Deadline) -> loop(Op, MinOps, Deadline, 0, []) end).

loop(Op, MinOps, Deadline, Ops, Acc) ->
    case Ops >= MinOps andalso now_us() >= Deadline of
        true -> {Ops, lists:reverse(Acc)};
        false ->
            {K, S} = Op(),
            loop(Op, MinOps, Deadline, Ops + K, case S of none -> Acc; _ -> [S | Acc] end)
    end.

%% Run(Deadline) does its operations, going on until Deadline (a now_us() time), and
%% returns {how many it did, its samples}.
-spec until(worker(), fun((integer()) -> {pos_integer(), [term()]})) -> {[term()], window()}.
until(Worker, Run) ->
    Node = node_os_pid(),
    N0 = cpu_us(Node), W0 = cpu_us(Worker), T0 = now_us(),
    {Ops, Samples} = Run(T0 + ?MIN_US),
    T = now_us() - T0, N1 = cpu_us(Node), W1 = cpu_us(Worker),
    {Samples, #{ops => Ops, us => max(T, 1), node => N1 - N0,
                worker => case Worker of none -> none; _ -> W1 - W0 end}}.

%% A figure with the CPU us per operation of the node and of the worker (if any).
-spec with_cpu(number(), window()) -> #{value := number(), node_cpu_us := float(),
                                        worker_cpu_us => float()}.
with_cpu(Value, #{ops := Ops, node := N, worker := W}) ->
    M = #{value => Value, node_cpu_us => N / Ops},
    case W of none -> M; _ -> M#{worker_cpu_us => W / Ops} end.

%% Operations per second, with CPU per operation.
-spec per_s(window()) -> #{value := number(), node_cpu_us := float(), worker_cpu_us => float()}.
per_s(#{ops := Ops, us := Us} = Win) -> with_cpu(Ops / (Us / 1.0e6), Win).

-spec ops(window()) -> pos_integer().
ops(#{ops := Ops}) -> Ops.

-spec us(window()) -> pos_integer().
us(#{us := Us}) -> Us.

-spec node_os_pid() -> pos_integer().
node_os_pid() -> list_to_integer(os:getpid()).

%% utime + stime of an OS process so far, in us (0 for none).
-spec cpu_us(worker()) -> number().
cpu_us(none) -> 0;
cpu_us(OsPid) ->
    {ok, S} = file:read_file(["/proc/", integer_to_list(OsPid), "/stat"]),
    %% after the command name (which may hold spaces and parentheses) state is field 3
    [_, After] = string:split(S, ") ", trailing),
    Fields = string:lexemes(After, " "),
    Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
    Ticks * 1.0e6 / clock_ticks().

clock_ticks() ->
    case persistent_term:get({?MODULE, clk_tck}, undefined) of
        undefined ->
            T = list_to_integer(string:trim(os:cmd("getconf CLK_TCK"))),
            persistent_term:put({?MODULE, clk_tck}, T),
            T;
        T -> T
    end.

-spec now_us() -> integer().
now_us() -> erlang:monotonic_time(microsecond).
