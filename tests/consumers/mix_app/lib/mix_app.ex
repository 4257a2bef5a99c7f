defmodule MixApp do
  @moduledoc "A project that uses pybridge: its Python driver ships in priv/py."

  @doc """
  A port served by priv/py/tally.py. python_path names the directory per port, so it
  follows the application wherever it is installed (_build, a release).
  """
  def open(args \\ "") do
    py = Path.join(:code.priv_dir(:mix_app), "py")
    :pybridge.open("tally:Tally", args, [:binary, python_path: [py]])
  end

  @doc "A command, a control and a call: {output, control reply, call reply}."
  def roundtrip do
    port = open()
    true = :pybridge.command(port, "hello")
    out = receive do
      {^port, {:data, data}} -> data
    after
      5000 -> :timeout
    end
    reply = {out, :pybridge.control(port, 1, "abc"), :pybridge.call(port, 2, :count)}
    true = :pybridge.close(port)
    reply
  end
end
