%% OTP's erts/emulator/test/port_trace_SUITE, ported: the same Erlang side (data, trace
%% flags, assertions) against echo_drv written in Python (tests/drivers/echo_drv.py),
%% loaded as the named driver echo_drv. A traced pybridge port must show exactly what the
%% C echo_drv's port shows. OUTPUTV=true becomes the class EchoDrvV (with outputv).
-module(port_trace_SUITE_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

-define(ECHO_DRV_NOOP, 0).
-define(ECHO_DRV_OUTPUT, 1).
-define(ECHO_DRV_OUTPUT2, 2).
-define(ECHO_DRV_OUTPUT_BINARY, 3).
-define(ECHO_DRV_OUTPUTV, 4).
-define(ECHO_DRV_SET_TIMER, 5).
-define(ECHO_DRV_FAILURE_EOF, 6).
-define(ECHO_DRV_FAILURE_ATOM, 7).
-define(ECHO_DRV_FAILURE_POSIX, 8).
-define(ECHO_DRV_FAILURE, 9).
-define(ECHO_DRV_OUTPUT_TERM, 10).
-define(ECHO_DRV_DRIVER_OUTPUT_TERM, 11).
-define(ECHO_DRV_SEND_TERM, 12).
-define(ECHO_DRV_DRIVER_SEND_TERM, 13).
-define(ECHO_DRV_SAVE_CALLER, 14).

port_trace_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     %% each case in a process of its own, as common_test runs them
     [{spawn, {timeout, 60, {atom_to_list(T), fun() -> per_testcase(T) end}}} || T <- tests()]}.

tests() ->
    [ports, open_close, command, control, call, output, output2, output_binary, outputv,
     set_timer, failure_eof, failure_atom, failure_posix, failure, output_term,
     driver_output_term, send_term, driver_send_term].

per_testcase(T) ->
    erlang:trace(all, false, [all]),
    reload_drv("echo_drv:EchoDrv"),
    try ?MODULE:T() after erlang:trace(all, false, [all]) end.

%% Test that the 'ports' trace flag works
ports() ->
    {Prt, S} = trace_and_open([ports],[binary]),
    [{trace, Prt, open, S, echo_drv},
     {trace, Prt, getting_linked, S}] = flush(),
    register(?MODULE, Prt),
    unregister(?MODULE),
    register(?MODULE, Prt),
    [{trace,Prt,register,?MODULE},
     {trace,Prt,unregister,?MODULE},
     {trace,Prt,register,?MODULE}] = flush(),
    unlink(Prt),
    link(Prt),
    [{trace,Prt,getting_unlinked,S},
     {trace,Prt,getting_linked,S}] = flush(),
    erlang:port_close(Prt),
    true = [{trace,Prt,closed,normal},
     {trace,Prt,unregister,?MODULE}] ++ unlinked(Prt, S) =:= flush(),
    ok.

%% Test that port_close and ! close generate correct trace messages
open_close() ->
    S = trace_ports([send,'receive']),
    Prt = erlang:open_port({spawn, echo_drv}, [binary]),
    erlang:port_close(Prt),
    [{trace, Prt, 'receive', {S, close}}] = flush(),
    Prt2 = erlang:open_port({spawn, echo_drv}, [binary]),
    Prt2 ! {S, close},
    recv({Prt2, closed}),
    [{trace, Prt2, 'receive', {S, close}},
     {trace, Prt2, send, closed, S}] = flush(),
    catch erlang:port_close(Prt2),
    [] = flush(),
    ok.

%% Test that port_command and ! command generate correct trace messages
command() ->
    Flags = [send,'receive'],
    S = trace_ports(Flags),
    Prt = erlang:open_port({spawn, echo_drv}, [binary]),
    erlang:port_command(Prt, <<?ECHO_DRV_NOOP:8>>),
    [{trace, Prt, 'receive', {S, {command, <<?ECHO_DRV_NOOP:8>>}}}] = flush(),
    erlang:port_command(Prt, [?ECHO_DRV_NOOP, <<0:8>>]),
    [{trace, Prt, 'receive', {S, {command, <<?ECHO_DRV_NOOP:8,0:8>>}}}] = flush(),
    Prt ! {S, {command, <<?ECHO_DRV_NOOP:8>>}},
    [{trace, Prt, 'receive', {S, {command, <<?ECHO_DRV_NOOP:8>>}}}] = flush(),
    OutputMsg = <<?ECHO_DRV_NOOP:8,0:(8*512)>>,
    Prt ! {S, {command, OutputMsg}},
    [{trace, Prt, 'receive', {S, {command, OutputMsg}}}] = flush(),
    close(Prt, Flags),
    reload_drv("echo_drv:EchoDrvV"),
    Prt2 = erlang:open_port({spawn, echo_drv}, [binary]),
    OutputvMsg = [<<0:8>>,<<0:(8*512)>>,<<0:(8*256)>>,<<0:8>>],
    erlang:port_command(Prt2, OutputvMsg),
    [{trace, Prt2, 'receive', {S, {command, OutputvMsg}}}] = flush(),
    Prt2 ! {S, {command, OutputvMsg}},
    [{trace, Prt2, 'receive', {S, {command, OutputvMsg}}}] = flush(),
    close(Prt2, Flags),
    ok.

%% Test that port_control generate correct trace messages
control() ->
    Flags = [send,'receive'],
    {Prt, S} = trace_and_open(Flags,[binary]),
    [0] = erlang:port_control(Prt, 1, <<?ECHO_DRV_NOOP:8, 0:8>>),
    [{trace, Prt, 'receive', {S, {control, {1, <<?ECHO_DRV_NOOP:8, 0:8>>}}}},
     {trace, Prt, send, {Prt, {control, <<0:8>>}}, S}] = flush(),
    [0] = erlang:port_control(Prt, (1 bsl 32) - 1, <<?ECHO_DRV_NOOP:8, 0:8>>),
    [{trace, Prt, 'receive', {S, {control, {(1 bsl 32) - 1, <<?ECHO_DRV_NOOP:8, 0:8>>}}}},
     {trace, Prt, send, {Prt, {control, <<0:8>>}}, S}] = flush(),
    Msg = <<?ECHO_DRV_NOOP:8, 0:(8*512)>>,
    Pat = lists:duplicate(512, 0),
    Pat = erlang:port_control(Prt, 1, Msg),
    [{trace, Prt, 'receive', {S, {control, {1, Msg}}}},
     {trace, Prt, send, {Prt, {control, <<0:(8*512)>>}}, S}] = flush(),
    close(Prt, Flags),
    ok.

%% Test that port_call generate correct trace messages
call() ->
    Flags = [send,'receive'],
    {Prt, S} = trace_and_open(Flags,[binary]),
    Test = fun(Msg) ->
                   BinMsg = term_to_binary(Msg),
                   Msg = erlang:port_call(Prt, 0, Msg),
                   [{trace, Prt, 'receive', {S, {call, {0, BinMsg}}}},
                    {trace, Prt, send, {Prt, {call, BinMsg}}, S}] = flush()
           end,
    Test({hello, world, make_ref()}),
    Test({hello, world, lists:seq(1,1000)}),
    close(Prt, Flags),
    ok.

%% Test that driver_output generate correct trace messages
output() ->
    Flags = [send],
    {Prt, S} = trace_and_open(Flags,[binary]),
    erlang:port_command(Prt, <<?ECHO_DRV_OUTPUT, 123456:32>>),
    recv({Prt,{data,<<123456:32>>}}),
    [{trace, Prt, send, {Prt, {data, <<123456:32>>}}, S}] = flush(),
    close(Prt, Flags),
    ok.

%% Test that driver_output2 generate correct trace messages
output2() ->
    Flags = [send],
    {Prt, S} = trace_and_open(Flags,[binary]),
    erlang:port_command(Prt, <<?ECHO_DRV_OUTPUT2, 123456:32>>),
    recv({Prt,{data,[$a|<<123456:32>>]}}),
    [{trace, Prt, send, {Prt, {data, [$a|<<123456:32>>]}}, S}] = flush(),
    close(Prt, Flags),
    ok.

%% Test that driver_output_binary generate correct trace messages
output_binary() ->
    Flags = [send],
    {Prt, S} = trace_and_open(Flags,[binary]),
    erlang:port_command(Prt, <<?ECHO_DRV_OUTPUT_BINARY, 0, 123456:32>>),
    recv({Prt,{data,[$a|<<123456:32>>]}}),
    [{trace, Prt, send, {Prt, {data, [$a|<<123456:32>>]}}, S}] = flush(),
    close(Prt, Flags),
    ok.

%% Test that driver_outputv generate correct trace messages
outputv() ->
    Flags = [send],
    {Prt, S} = trace_and_open(Flags,[binary]),
    erlang:port_command(Prt, <<?ECHO_DRV_OUTPUTV, 123456:32>>),
    recv({Prt,{data,[$a|<<123456:32>>]}}),
    [{trace, Prt, send, {Prt, {data, [$a|<<123456:32>>]}}, S}] = flush(),
    erlang:port_close(Prt),
    [] = flush(),
    ok.

%% Test that driver_set_timer generate correct trace messages
set_timer() ->
    Flags = [send,'receive'],
    {Prt, S} = trace_and_open(Flags,[binary]),
    erlang:port_command(Prt, <<?ECHO_DRV_SET_TIMER>>),
    timer:sleep(100),
    [{trace, Prt, 'receive', {S, {command, <<?ECHO_DRV_SET_TIMER>>}}},
     {trace, Prt, 'receive', timeout}] = flush(),
    close(Prt, Flags),
    ok.

%% Test that driver_failure* generate correct trace messages
failure_eof() ->
    Flags = [send,'receive', ports],
    S = trace_ports(Flags),
    Prt = erlang:open_port({spawn, echo_drv}, [eof, binary]),
    [{trace, Prt, open, S, echo_drv},
     {trace, Prt, getting_linked, S}] = flush(),
    erlang:port_command(Prt, <<?ECHO_DRV_FAILURE_EOF>>),
    recv({Prt,eof}),
    [{trace, Prt, 'receive', {S, {command, <<?ECHO_DRV_FAILURE_EOF>>}}},
     {trace, Prt, send, {Prt, eof}, S}] = flush(),
    close(Prt, Flags),
    %% Run same test without eof option
    failure_test(<<?ECHO_DRV_FAILURE_EOF>>, normal).

failure_atom() ->
    failure_test(<<?ECHO_DRV_FAILURE_ATOM, "failure\0">>, failure).
failure_posix() ->
    failure_test(<<?ECHO_DRV_FAILURE_POSIX>>, eagain).
failure() ->
    failure_test(<<?ECHO_DRV_FAILURE, 1>>, 1).

failure_test(Failure, Reason) ->
    {Prt, S} = trace_and_open([send, 'receive', ports],[binary]),
    [{trace, Prt, open, S, echo_drv},
     {trace, Prt, getting_linked, S}] = flush(),
    process_flag(trap_exit, true),
    erlang:port_command(Prt, Failure),
    try
        recv({'EXIT',Prt,Reason})
    after
        process_flag(trap_exit, false)
    end,
    true = [{trace, Prt, 'receive', {S, {command, Failure}}},
     {trace, Prt, closed, Reason}] ++ unlinked(Prt, S) =:= flush(),
    ok.

%% Test that erl_drv_output_term generate correct trace messages
output_term() ->
    output_term_test(?ECHO_DRV_OUTPUT_TERM).

%% Test that driver_output_term generate correct trace messages
driver_output_term() ->
    output_term_test(?ECHO_DRV_DRIVER_OUTPUT_TERM).

output_term_test(Op) ->
    Flags = [send],
    {Prt, S} = trace_and_open(Flags,[binary]),
    erlang:port_command(Prt, <<Op, 123456:32>>),
    recv({echo, Prt, <<123456:32>>}),
    [{trace, Prt, send, {echo, Prt, <<123456:32>>}, S}] = flush(),
    close(Prt, Flags),
    ok.

%% Test that erl_drv_send_term generate correct trace messages
send_term() ->
    send_term_test(?ECHO_DRV_SEND_TERM).

%% Test that driver_send_term generate correct trace messages
driver_send_term() ->
    send_term_test(?ECHO_DRV_DRIVER_SEND_TERM).

send_term_test(Op) ->
    Flags = [send],
    {Prt, S} = trace_and_open(Flags,[binary]),
    erlang:port_command(Prt, <<Op, 123456:32>>),
    recv({echo, Prt, <<123456:32>>}),
    [{trace, Prt, send, {echo, Prt, <<123456:32>>}, S}] = flush(),
    {Pid, Ref} = spawn_monitor(fun() -> erlang:port_command(Prt, <<?ECHO_DRV_SAVE_CALLER>>) end),
    recv({'DOWN',Ref,process,Pid,normal}),
    erlang:port_command(Prt, <<?ECHO_DRV_SEND_TERM, 123456:32>>),
    [{trace, Prt, send_to_non_existing_process, {echo, Prt, <<123456:32>>}, Pid}] = flush(),
    close(Prt, Flags),
    ok.

%%%%%%%%%%%%%%%%%%%
%% Helper functions
%%%%%%%%%%%%%%%%%%%

trace_ports(TraceFlags) ->
    erlang:trace(new_ports, true, TraceFlags),
    self().

trace_and_open(TraceFlags, OpenFlags) ->
    S = self(),
    Ports = proplists:get_value(ports, TraceFlags),
    [trace_ports(TraceFlags) || Ports],
    Prt = erlang:open_port({spawn, echo_drv}, OpenFlags),
    [erlang:trace(Prt, true, TraceFlags) || Ports == undefined],
    {Prt, S}.

close(Prt, Flags) ->
    Recv = proplists:get_value('receive', Flags),
    Ports = proplists:get_value(ports, Flags),
    S = self(),
    erlang:port_close(Prt),
    if Recv, Ports ->
            true = [{trace, Prt, 'receive', {S, close}},
             {trace, Prt, closed, normal}] ++ unlinked(Prt, S) =:= flush();
       Recv ->
            [{trace, Prt, 'receive', {S, close}}] = flush();
       Ports ->
            true = [{trace, Prt, closed, normal}] ++ unlinked(Prt, S) =:= flush();
       true ->
            [] = flush()
    end.

trace_delivered() ->
    Ref = erlang:trace_delivered(all),
    receive {trace_delivered, all, Ref} -> ok end.

flush() ->
    flush(all).
flush(From) ->
    trace_delivered(),
    f(From).

f(From) ->
    receive
        M when From =:= all; element(2, M) == From ->
            [M | f(From)]
    after 0 ->
            []
    end.

recv(Msg) ->
    receive Msg -> ok after 1000 -> error({did_not_get_data,Msg,flush()}) end.

%% The unlink a closing port shows: OTP's suite (of a later OTP) expects it, but OTP 25's
%% own C drivers' ports show none (checked with a C driver: open, trace new_ports with
%% [send, 'receive', ports], port_close gives 'receive' close then closed normal only).
unlinked(Prt, S) ->
    case erlang:system_info(otp_release) > "25" of
        true -> [{trace, Prt, unlink, S}];
        false -> []
    end.

%% load_drv/reload_drv: the named driver echo_drv serving a class of echo_drv.py
reload_drv(Spec) ->
    _ = pybridge:unload_driver("echo_drv"),
    ok = pybridge:load_driver("echo_drv", Spec).
