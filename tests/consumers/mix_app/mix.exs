defmodule MixApp.MixProject do
  use Mix.Project

  def project do
    [app: :mix_app, version: "0.1.0", elixir: "~> 1.14", deps: deps()]
  end

  def application, do: [extra_applications: [:logger]]

  # The dependency as a project writes it. The URL is not fixed: tests/consumers/run.sh
  # points PYBRIDGE_GIT at a mirror of this repository whose main branch is HEAD.
  # pybridge is a rebar3 project: mix builds it with rebar3 (MIX_REBAR3), hooks included.
  defp deps do
    [{:pybridge, git: System.fetch_env!("PYBRIDGE_GIT"), branch: "main", manager: :rebar3}]
  end
end
