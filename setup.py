"""The compiled part of the package, which pyproject.toml cannot declare with the setuptools
the project supports: pybridge._wire._accel, the worker's per-frame hot path (issue 14).
Everything else about the package is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "pybridge._wire._accel",
    sources=["pybridge/_wire/_accel.c", "pybridge/_wire/_accel_reader.c",
             "pybridge/_wire/_accel_writer.c", "pybridge/_wire/_accel_conn.c",
             "pybridge/_wire/_accel_port.c",
             "pybridge/_wire/_accel_etf.c"],
    depends=["pybridge/_wire/_accel.h"],
    # CPython's callback signatures name parameters a method may not use
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)])
