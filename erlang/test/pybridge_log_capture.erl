%% A logger handler for tests: forwards pybridge's log events to a process.
-module(pybridge_log_capture).
-export([log/2]).

-spec log(logger:log_event(), logger:handler_config()) -> term().
log(#{level := Level, msg := Msg, meta := Meta}, #{config := #{to := To}}) ->
    case Meta of
        #{pybridge_worker := _} ->
            Text = case Msg of
                       {report, R} -> io_lib:format("~p", [R]);
                       {string, S} -> S;
                       {Fmt, Args} -> io_lib:format(Fmt, Args)
                   end,
            To ! {logged, Level, unicode:characters_to_list(Text), Meta};
        _ ->
            ok
    end.
