import Config

# The interpreter of the project's virtualenv, the one with the pybridge Python package.
config :pybridge, python: Path.expand("../.venv/bin/python", __DIR__)
