%% Named drivers (pybridge:load_driver/2): a Python class under a driver name of its own.
-module(pybridge_named_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

named_test_() ->
    {setup,
     fun pybridge_test_lib:start/0,
     fun pybridge_test_lib:stop/1,
     [{timeout, 60, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()]}.

tests() ->
    [opens_under_its_name, unload_kills_ports, soft_busy_lets_force_through,
     force_without_soft_busy_is_notsup, bad_names_and_specs].

opens_under_its_name() ->
    ok = pybridge:load_driver("pb_upper", "upper:Upper"),
    P = open_port({spawn_driver, "pb_upper some args"}, [binary]),
    {name, Name} = erlang:port_info(P, name),
    ?assertEqual("pb_upper", hd(string:split(Name, " "))),
    true = erlang:port_command(P, <<"named">>),
    ?assertEqual({data, <<"NAMED">>}, receive {P, M} -> M after 2000 -> timeout end),
    ?assertEqual("cba", erlang:port_control(P, 0, <<"abc">>)),
    port_close(P),
    ?assertEqual({error, already_loaded}, pybridge:load_driver("pb_upper", "upper:Upper")),
    ok = pybridge:unload_driver("pb_upper").

unload_kills_ports() ->
    process_flag(trap_exit, true),
    ok = pybridge:load_driver("pb_upper2", "upper:Upper"),
    Ps = [open_port({spawn_driver, "pb_upper2"}, [binary]) || _ <- [1, 2]],
    ok = pybridge:unload_driver("pb_upper2"),
    ?assertEqual([driver_unloaded, driver_unloaded],
                 [receive {'EXIT', P, R} -> R after 2000 -> timeout end || P <- Ps]),
    ?assertError(badarg, open_port({spawn_driver, "pb_upper2"}, [binary])),
    process_flag(trap_exit, false).

make_busy(P) ->
    true = erlang:port_command(P, <<"busy">>),
    %% a control round trip: the busy request has been carried out when it returns
    [] = erlang:port_control(P, 0, <<>>),
    true = erlang:port_command(P, <<"busy">>),
    timer:sleep(50).

soft_busy_lets_force_through() ->
    ok = pybridge:load_driver("pb_soft_busy", "soft_busy:SoftBusy"),
    P = open_port({spawn_driver, "pb_soft_busy"}, [binary]),
    make_busy(P),
    ?assertEqual(false, erlang:port_command(P, <<"x">>, [nosuspend])),
    ?assertEqual(true, erlang:port_command(P, <<"forced">>, [force])),
    ?assertEqual({data, <<"forced">>}, receive {P, M} -> M after 2000 -> timeout end),
    port_close(P),
    ok = pybridge:unload_driver("pb_soft_busy").

force_without_soft_busy_is_notsup() ->
    P = pybridge:open("busy:Busy", [binary]),
    make_busy(P),
    ?assertError(notsup, erlang:port_command(P, <<"forced">>, [force])),
    [] = erlang:port_control(P, 0, <<>>),
    port_close(P).

bad_names_and_specs() ->
    ?assertError(badarg, pybridge:load_driver("pybridge", "upper:Upper")),
    ?assertError(badarg, pybridge:load_driver("Bad Name", "upper:Upper")),
    ?assertError(badarg, pybridge:load_driver("ok_name", "not a spec")),
    ?assertMatch({error, {python, _}}, pybridge:load_driver("pb_missing", "no_such_module:D")).
