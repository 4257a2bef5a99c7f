%% @doc What the node remembers about each Python driver class (by its spec): the worker
%% deaths blamed on it, whether its opens are refused for a crash loop, and its
%% `worker_group' attribute once asked. One public ETS table, created by pybridge_sup
%% (which owns it for the application's life); pybridge_manager writes deaths,
%% pybridge:open reads, pybridge:reload/1 forgets the groups of a reloaded module.
-module(pybridge_classes).

-export([new_table/0, death/1, refused/1, group/1, remember_group/2, forget_groups/1]).

-define(TAB, pybridge_classes).

%% @doc The table, from pybridge_sup:init/1.
-spec new_table() -> ok.
new_table() ->
    _ = ets:new(?TAB, [named_table, public, set, {read_concurrency, true}]),
    ok.

%% @doc A worker death blamed on Spec. Once the configured number of deaths fall within
%% the period (pybridge_config:crash_loop/0), its opens are refused for a while:
%% {crash_loop, Deaths, RefuseMs} says that this death started the refusal.
-spec death(string()) -> ok | {crash_loop, pos_integer(), non_neg_integer()}.
death(Spec) ->
    #{deaths := Max, period := Period, refuse := Refuse} = pybridge_config:crash_loop(),
    Now = erlang:monotonic_time(millisecond),
    Recent = [T || T <- [Now | deaths(Spec)], T > Now - Period],
    case length(Recent) >= Max of
        true ->
            true = ets:insert(?TAB, {{deaths, Spec}, []}),
            true = ets:insert(?TAB, {{refused, Spec}, Now + Refuse}),
            {crash_loop, length(Recent), Refuse};
        false ->
            true = ets:insert(?TAB, {{deaths, Spec}, Recent}),
            ok
    end.

%% @doc Whether opens of Spec are refused now.
-spec refused(string()) -> boolean().
refused(Spec) ->
    case ets:lookup(?TAB, {refused, Spec}) of
        [{_, Until}] -> erlang:monotonic_time(millisecond) < Until;
        [] -> false
    end.

%% @doc The class's worker_group attribute, if it was asked before.
-spec group(string()) -> {ok, atom()} | error.
group(Spec) ->
    case ets:lookup(?TAB, {group, Spec}) of
        [{_, G}] -> {ok, G};
        [] -> error
    end.

-spec remember_group(string(), atom()) -> ok.
remember_group(Spec, Group) ->
    true = ets:insert(?TAB, {{group, Spec}, Group}),
    ok.

%% @doc The module was reloaded (pybridge:reload/1): its classes' worker_group attributes
%% are asked again at their next open.
-spec forget_groups(binary()) -> ok.
forget_groups(Module) ->
    Prefix = binary_to_list(Module) ++ ":",
    _ = [ets:delete(?TAB, {group, Spec})
         || [Spec] <- ets:match(?TAB, {{group, '$1'}, '_'}), lists:prefix(Prefix, Spec)],
    ok.

-spec deaths(string()) -> [integer()].
deaths(Spec) ->
    case ets:lookup(?TAB, {deaths, Spec}) of
        [{_, Ts}] -> Ts;
        [] -> []
    end.
