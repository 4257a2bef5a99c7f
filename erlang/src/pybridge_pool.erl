%% @doc Pools of Python drivers across a cluster (docs/CLUSTER.md): starting a pool's
%% members on this node, and routing a call from any node to one member.
%%
%% Membership is OTP's pg (scope pybridge_pg): a member is in group Pool while its port is
%% open, and in {members, Pool} from its start (pool_info/1 reads that one, so members
%% waiting out a backoff are reported too). Routing happens in the caller's process: local
%% members first (prefer => local, the default) then the remote ones, each side least
%% loaded first; or all least loaded first (prefer => least_loaded), local ones winning ties.
%% The load is the count of calls this node has in flight at a member
%% (pybridge_pool_view); a member with no room says `overloaded' at once and the caller
%% offers the call to the next one. The reply comes to an alias of the caller's monitor of
%% the member, so a member that dies, or whose node goes down, is {pybridge, member_down},
%% and an answer after the caller gave up is dropped by the runtime.
-module(pybridge_pool).

-export([start/3, spec/3, stop/1, call/3, info/1]).
-export_type([option/0, config/0, call_option/0, op/0, member_info/0, info/0,
              error_reason/0]).

-define(MAX_SIZE, 1024).
-define(MAX_QUEUE, 1000000).
-define(MAX_WAIT_SLEEP_MS, 32).

-type option() :: #{size => 1..?MAX_SIZE, args => iodata(), timeout => 0..16#FFFFFFFF,
                    max_queue => 0..?MAX_QUEUE, prefer => local | least_loaded,
                    open_options => [pybridge:open_option()]}.
-type config() :: #{spec := pybridge:spec(), size := 1..?MAX_SIZE, args := iodata(),
                    timeout := 0..16#FFFFFFFF, max_queue := 0..?MAX_QUEUE,
                    prefer := local | least_loaded, open_options := [pybridge:open_option()]}.
-type call_option() :: #{retry => non_neg_integer(), wait => boolean(),
                         timeout => non_neg_integer()}.
-type op() :: {call, non_neg_integer(), term()} | {control, non_neg_integer(), iodata()}
            | {command, iodata()}.
-type member_info() :: #{node := node(), pid := pid(), index := pos_integer(),
                         state := ready | backoff, in_flight := 0 | 1,
                         queued := non_neg_integer(), served := non_neg_integer(),
                         refused := non_neg_integer(), outputs := non_neg_integer(),
                         restarts := non_neg_integer(), backoff_ms := non_neg_integer(),
                         os_pid := non_neg_integer()}.
-type info() :: #{members := #{node() => [member_info()]}, size := non_neg_integer(),
                  in_flight := non_neg_integer(), queued := non_neg_integer(),
                  restarts := non_neg_integer()}.
-type error_reason() :: pybridge:error_reason()
                      | {pybridge, member_down | no_members | overloaded}.

%% @doc Start Pool's members on this node under the application's supervisor. A pool of
%% that name already here: {error, already_started}; a member that cannot open its port:
%% {error, Reason} with the open's reason (pybridge:open/3). Bad options are badarg.
-spec start(atom(), pybridge:spec(), option()) -> {ok, pid()} | {error, term()}.
start(Pool, Spec, Opts) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    case supervisor:start_child(pybridge_pools, spec(Pool, Spec, Opts)) of
        {ok, Pid} -> {ok, Pid};
        {error, {already_started, _}} -> {error, already_started};
        {error, already_present} -> {error, already_started};
        %% a member's open failed: the open's reason, as pybridge:open/3 raises it
        {error, {{shutdown, {failed_to_start_child, _, Reason}}, _Child}} -> {error, Reason};
        {error, Reason} -> {error, Reason}
    end.

%% @doc The child spec of Pool's members on this node, for a supervisor of the user's.
-spec spec(atom(), pybridge:spec(), option()) -> supervisor:child_spec().
spec(Pool, Spec, Opts) ->
    is_atom(Pool) orelse error(badarg),
    #{id => {pybridge_pool, Pool},
      start => {pybridge_pool_sup, start_link, [Pool, config(Spec, Opts)]},
      restart => permanent, shutdown => infinity, type => supervisor}.

%% @doc Stop Pool's members on this node (started by start/3): their ports close, calls
%% still queued at them fail with {pybridge, member_down}.
-spec stop(atom()) -> ok | {error, not_found}.
stop(Pool) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    Id = {pybridge_pool, Pool},
    case supervisor:terminate_child(pybridge_pools, Id) of
        ok ->
            ok = supervisor:delete_child(pybridge_pools, Id),
            pybridge_pool_view:forget_prefer(Pool);
        {error, not_found} ->
            {error, not_found}
    end.

%% @doc Run Op on one member of Pool, wherever it is; raise error_reason() (see the module
%% doc and docs/CLUSTER.md). Options: retry (calls to try again on another member after
%% member_down, for idempotent work; default 0), wait (wait for a member with room instead
%% of raising overloaded or no_members; default false), timeout (ms this caller waits in all,
%% default the app env timeout of this node; past it {pybridge, timeout}).
-spec call(atom(), op(), call_option()) -> term().
call(Pool, Op, Opts) ->
    is_atom(Pool) orelse error(badarg),
    %% the pg scope runs with the application: without it this node sees no member
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    {Retry, Wait, Timeout} = call_options(Opts),
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    case attempt(Pool, Op, Retry, Wait, Deadline, [], 1) of
        {ok, Reply} -> Reply;
        {error, Reason} -> error(Reason)
    end.

%% @doc Every member of Pool that answers within 2 s, by node, with the totals.
-spec info(atom()) -> info().
info(Pool) ->
    whereis(pybridge_sup) =:= undefined andalso error({pybridge, not_started}),
    Members = pg:get_members(pybridge_pool_view:scope(), {members, Pool}),
    Deadline = erlang:monotonic_time(millisecond) + 2000,
    Requests = [gen_server:send_request(M, info) || M <- Members],
    Infos = [I || R <- Requests, {reply, I} <- [gen_server:receive_response(R, ms_left(Deadline))]],
    Sum = fun(K) -> lists:sum([maps:get(K, I) || I <- Infos]) end,
    #{members => maps:groups_from_list(fun(#{node := N}) -> N end, Infos),
      size => length(Infos), in_flight => Sum(in_flight), queued => Sum(queued),
      restarts => Sum(restarts)}.

-spec attempt(atom(), op(), non_neg_integer(), boolean(), integer(), [pid()], pos_integer()) ->
          {ok, term()} | {error, term()}.
attempt(Pool, Op, Retry, Wait, Deadline, Down, Sleep) ->
    Members = pg:get_members(pybridge_pool_view:scope(), Pool) -- Down,
    Refused = case Members of [] -> no_members; _ -> overloaded end,
    case offer(Pool, order(Pool, Members), Op, Deadline) of
        {down, Member} when Retry > 0 ->
            attempt(Pool, Op, Retry - 1, Wait, Deadline, [Member | Down], Sleep);
        {down, _} ->
            {error, {pybridge, member_down}};
        refused when Wait ->
            %% no new offer that the deadline would cut short, leaving its fate unknown
            case ms_left(Deadline) > Sleep of
                true ->
                    timer:sleep(Sleep),
                    attempt(Pool, Op, Retry, Wait, Deadline, Down,
                            min(2 * Sleep, ?MAX_WAIT_SLEEP_MS));
                false ->
                    {error, {pybridge, Refused}}
            end;
        refused ->
            {error, {pybridge, Refused}};
        Answer ->
            Answer
    end.

%% Offer Op to each member in turn until one takes it.
-spec offer(atom(), [pid()], op(), integer()) ->
          {ok, term()} | {error, term()} | {down, pid()} | refused.
offer(_Pool, [], _Op, _Deadline) ->
    refused;
offer(Pool, [Member | Rest], Op, Deadline) ->
    ok = pybridge_pool_view:call_sent(Member, Pool),
    Answer = try ask(Member, Op, Deadline) after pybridge_pool_view:call_done(Member) end,
    case Answer of
        overloaded -> offer(Pool, Rest, Op, Deadline);
        {error, {pybridge, member_down}} -> {down, Member};
        down -> {down, Member};
        _ -> Answer
    end.

-spec ask(pid(), op(), integer()) -> {ok, term()} | {error, term()} | overloaded | down.
ask(Member, Op, Deadline) ->
    Alias = erlang:monitor(process, Member, [{alias, demonitor}]),
    Member ! {'$pybridge_pool', Alias, Op},
    receive
        {Alias, Answer} ->
            erlang:demonitor(Alias, [flush]),
            Answer;
        {'DOWN', Alias, process, _, _} ->
            down
    after ms_left(Deadline) ->
        erlang:demonitor(Alias, [flush]),
        Member ! {'$pybridge_pool_cancel', Alias},
        %% an answer that came in the meantime is not left in the mailbox
        receive {Alias, _} -> ok after 0 -> ok end,
        {error, {pybridge, timeout}}
    end.

%% Local members first (prefer local) or the least loaded first (least_loaded); ties are
%% broken at random so that an idle pool spreads its calls.
-spec order(atom(), [pid()]) -> [pid()].
order(Pool, Members) ->
    Prefer = pybridge_pool_view:prefer(Pool),
    Keyed = [{key(Prefer, node(M) =/= node(), pybridge_pool_view:load(M)), rand:uniform(), M}
             || M <- Members],
    [M || {_, _, M} <- lists:sort(Keyed)].

-spec key(local | least_loaded, boolean(), non_neg_integer()) -> tuple().
key(local, Remote, Load) -> {Remote, Load};
key(least_loaded, Remote, Load) -> {Load, Remote}.

-spec call_options(term()) -> {non_neg_integer(), boolean(), non_neg_integer()}.
call_options(Opts) when is_map(Opts) ->
    maps:size(maps:without([retry, wait, timeout], Opts)) =:= 0 orelse error(badarg),
    #{retry := Retry, wait := Wait, timeout := Timeout} =
        maps:merge(#{retry => 0, wait => false, timeout => pybridge_config:timeout()}, Opts),
    (is_integer(Retry) andalso Retry >= 0 andalso is_boolean(Wait)
     andalso is_integer(Timeout) andalso Timeout >= 0 andalso Timeout =< 16#FFFFFFFF)
        orelse error(badarg),
    {Retry, Wait, Timeout};
call_options(_) ->
    error(badarg).

-spec config(pybridge:spec(), term()) -> config().
config(Spec, Opts) when is_map(Opts) ->
    Known = [size, args, timeout, max_queue, prefer, open_options],
    maps:size(maps:without(Known, Opts)) =:= 0 orelse error(badarg),
    Config = maps:merge(#{size => 1, args => "", timeout => pybridge_config:timeout(),
                          max_queue => 16, prefer => local, open_options => []}, Opts),
    lists:all(fun(K) -> valid(K, maps:get(K, Config)) end, Known) orelse error(badarg),
    Config#{spec => Spec};
config(_, _) ->
    error(badarg).

-spec valid(atom(), term()) -> boolean().
valid(size, N) -> is_integer(N) andalso N >= 1 andalso N =< ?MAX_SIZE;
valid(args, A) -> try iolist_size(A) >= 0 catch error:badarg -> false end;
valid(timeout, T) -> is_integer(T) andalso T >= 0 andalso T =< 16#FFFFFFFF;
valid(max_queue, Q) -> is_integer(Q) andalso Q >= 0 andalso Q =< ?MAX_QUEUE;
valid(prefer, P) -> P =:= local orelse P =:= least_loaded;
valid(open_options, L) -> is_list(L).

-spec ms_left(integer()) -> non_neg_integer().
ms_left(Deadline) ->
    max(0, Deadline - erlang:monotonic_time(millisecond)).
