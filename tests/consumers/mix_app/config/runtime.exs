import Config

# A release reads this when it starts: the interpreter of the virtualenv named at deploy time.
if venv = System.get_env("PYBRIDGE_VENV") do
  config :pybridge, python: Path.join(venv, "bin/python")
end
