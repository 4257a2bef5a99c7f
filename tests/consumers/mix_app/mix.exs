defmodule MixApp.MixProject do
  use Mix.Project

  def project do
    [app: :mix_app, version: "0.1.0", elixir: "~> 1.14", deps: deps()]
  end

  def application, do: [extra_applications: [:logger]]

  defp deps do
    [{:pybridge, git: System.fetch_env!("PYBRIDGE_GIT"), branch: "main", manager: :rebar3}]
  end
end
