%% The handshake refuses a worker that speaks another protocol version.
-module(pybridge_handshake_tests).
-include_lib("eunit/include/eunit.hrl").

mismatched_worker_is_refused_test() ->
    application:load(pybridge),
    {ok, Python} = application:get_env(pybridge, python),
    Fake = filename:absname("tests/drivers/fake_worker_v99.py"),
    %% the fake worker is run as `python fake_worker_v99.py -m pybridge worker ...`
    Wrapper = filename:join(filename:basedir(user_cache, "pybridge_test"), "fake_python"),
    ok = filelib:ensure_dir(Wrapper),
    Real = case Python of false -> os:getenv("PYBRIDGE_PYTHON", "python3"); P -> P end,
    ok = file:write_file(Wrapper, ["#!/bin/sh\nexec ", Real, " ", Fake, "\n"]),
    ok = file:change_mode(Wrapper, 8#755),
    application:set_env(pybridge, python, Wrapper),
    try
        {error, Reason} = application:ensure_all_started(pybridge),
        ?assertMatch({pybridge, {{shutdown, {failed_to_start_child, _,
                                             {pybridge_protocol_mismatch, _}}}, _}}, Reason)
    after
        application:set_env(pybridge, python, Python)
    end.
