%% OTP's erts/emulator/test/driver_SUITE, ported case by case: the same Erlang side (data,
%% assertions, timing windows) against the suite's C drivers written in Python
%% (tests/drivers/<name>.py), each loaded as a named driver of the C driver's name.
%% OTP's load_driver(Dir, Name) becomes pybridge:load_driver(Name, Spec); an environment
%% variable read by a C driver's init to pick its callbacks becomes a second class.
-module(driver_SUITE_tests).
-include_lib("eunit/include/eunit.hrl").
-compile([export_all, nowarn_export_all]).

driver_test_() ->
    {setup, fun pybridge_test_lib:start/0, fun pybridge_test_lib:stop/1,
     [{timeout, 120, {atom_to_list(T), fun ?MODULE:T/0}} || T <- tests()]}.

tests() ->
    [otp_6879, caller, missing_callbacks].

load_driver(Name, Spec) ->
    _ = pybridge:unload_driver(atom_to_list(Name)),
    ok = pybridge:load_driver(atom_to_list(Name), Spec).

start_driver(Name, Spec, Binary) ->
    load_driver(Name, Spec),
    open_port({spawn, Name}, [binary || Binary]).

stop_driver(Port, Name) ->
    true = erlang:port_close(Port),
    receive {Port, Message} -> error({strange_message_from_port, Message})
    after 0 -> ok
    end,
    ok = pybridge:unload_driver(atom_to_list(Name)).

otp_6879() ->
    Drv = 'otp_6879_drv',
    Parent = self(),
    load_driver(Drv, "otp_6879_drv:Otp6879Drv"),
    Procs = lists:map(
              fun (No) ->
                      spawn_link(
                        fun () ->
                                case open_port({spawn, Drv}, []) of
                                    Port when is_port(Port) ->
                                        Res = otp_6879_call(Port, No, 10000),
                                        erlang:port_close(Port),
                                        Parent ! {self(), Res};
                                    _ ->
                                        Parent ! {self(),
                                                  open_port_failed}
                                end
                        end)
              end,
              lists:seq(1,10)),
    lists:foreach(fun (P) ->
                          receive
                              {P, ok} ->
                                  ok;
                              {P, Error} ->
                                  error({P, Error})
                          end
                  end,
                  Procs),
    %% Also try it when input exceeds default buffer (256 bytes)
    Data = lists:seq(1, 1000),
    case open_port({spawn, Drv}, []) of
        Port when is_port(Port) ->
            ok = otp_6879_call(Port, Data, 10),
            erlang:port_close(Port);
        _ ->
            error(open_port_failed)
    end,
    pybridge:unload_driver(atom_to_list(Drv)),
    ok.

otp_6879_call(_Port, _Data, 0) ->
    ok;
otp_6879_call(Port, Data, N) ->
    case catch erlang:port_call(Port, 0, Data) of
        Data -> otp_6879_call(Port, Data, N-1);
        BadData -> {mismatch, Data, BadData}
    end.

caller() ->
    run_caller_test(false),
    run_caller_test(true).

run_caller_test(Outputv) ->
    Drv = 'caller_drv',
    {Cmd, Spec} = case Outputv of
                      true -> {outputv, "caller_drv:CallerDrvV"};
                      false -> {output, "caller_drv:CallerDrv"}
                  end,
    load_driver(Drv, Spec),
    Port = open_port({spawn, Drv}, []),
    true = is_port(Port),
    chk_caller(Port, start, self()),
    chk_caller(Port,
               Cmd,
               spawn_link(
                 fun () ->
                         port_command(Port, "")
                 end)),
    Port ! {self(), {command, ""}},
    chk_caller(Port, Cmd, self()),
    chk_caller(Port,
               control,
               spawn_link(
                 fun () ->
                         port_control(Port, 0, "")
                 end)),
    chk_caller(Port,
               call,
               spawn_link(
                 fun () ->
                         erlang:port_call(Port, 0, "")
                 end)),
    true = port_close(Port),
    pybridge:unload_driver(atom_to_list(Drv)),
    ok.

chk_caller(Port, Callback, ExpectedCaller) ->
    receive
        {caller, Port, Callback, Caller} ->
            ExpectedCaller = Caller
    end.

missing_callbacks() ->
    Name = 'missing_callback_drv',
    Port = start_driver(Name, "missing_callback_drv:MissingCallbackDrv", false),
    Port ! {self(), {command, "tjenix"}},
    true = erlang:port_command(Port, "halloj"),
    {'EXIT', {badarg, _}} = (catch erlang:port_control(Port, 4711, "mors")),
    {'EXIT', {badarg, _}} = (catch erlang:port_call(Port, 17, "hej")),
    %% Give the (non-existing) ready_output(), ready_input(), event(),
    %% and timeout() some time to be called.
    receive after 1000 -> ok end,
    stop_driver(Port, Name),
    ok.
