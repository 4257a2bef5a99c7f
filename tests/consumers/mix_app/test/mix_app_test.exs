defmodule MixAppTest do
  use ExUnit.Case

  test "a Python driver answers a command, a control and a call" do
    assert MixApp.roundtrip() == {"HELLO", ~c"cba", {:count, 5, nil}}
  end
end
