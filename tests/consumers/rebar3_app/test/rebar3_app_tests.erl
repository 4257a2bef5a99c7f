-module(rebar3_app_tests).

-include_lib("eunit/include/eunit.hrl").

roundtrip_test() ->
    {ok, _} = application:ensure_all_started(rebar3_app),
    ?assertEqual({<<"HELLO">>, "olleh"}, rebar3_app:roundtrip()).
