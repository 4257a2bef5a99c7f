defmodule MixAppTest do
  use ExUnit.Case

  test "a Python driver answers a command, a control and a call" do
    assert MixApp.roundtrip() == {"HELLO", ~c"cba", {:count, 5, nil}}
  end

  test "start gets the open's args, a Python exception is an Erlang error" do
    port = MixApp.open("héllo")
    assert :pybridge.call(port, 3, nil) == "héllo"
    assert {:python, :"builtins.KeyError", "'nope'", _traceback} =
             catch_error(:pybridge.call(port, 4, "nope"))
    :pybridge.close(port)
  end
end
