# pybridge: `make demo` and `make test` set everything up on a fresh Debian machine.
# Set-up is idempotent and quiet when things are already there.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
EBIN    := _build/default/lib/pybridge/ebin
export PYBRIDGE_PYTHON := $(abspath $(PY))

.PHONY: all setup system python build demo test test-python test-pythons test-erlang test-pure test-fuzz lint bench bench-instructions python-dev asan fuzz soak valgrind test-consumers clean

all: build

setup: system python

# Debian's Erlang (with erl_driver.h), rebar3, Python's venv and headers (the package's C
# part), clang (libFuzzer) and Elixir
# (make test-consumers), unless already there.
system:
	@PKGS=; \
	if ! command -v erl >/dev/null || ! command -v rebar3 >/dev/null || \
	    [ ! -f "$$(erl -noshell -eval 'io:format("~ts/erts-~ts/include/erl_driver.h", [code:root_dir(), erlang:system_info(version)]), halt().' 2>/dev/null)" ]; then \
	  PKGS="erlang-nox erlang-dev rebar3"; \
	fi; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || PKGS="$$PKGS python3-venv"; \
	python3 -c 'import os, sysconfig; os.stat(sysconfig.get_path("include") + "/Python.h")' \
	  2>/dev/null || PKGS="$$PKGS python3-dev"; \
	command -v cc >/dev/null || PKGS="$$PKGS gcc make"; \
	command -v clang >/dev/null || PKGS="$$PKGS clang"; \
	command -v mix >/dev/null || PKGS="$$PKGS elixir"; \
	if [ -n "$$PKGS" ]; then \
	  echo "==> installing Debian packages:$$PKGS"; \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$PKGS >/dev/null; \
	fi

# The Python package (editable) with its test and lint extras, in a venv of its own; pip
# compiles its C part (setup.py: the worker's hot path), again whenever that changes.
python: $(STAMP)
$(STAMP): pyproject.toml setup.py $(wildcard pybridge/_wire/_accel*.[ch])
	@[ -x $(PY) ] || { echo "==> creating $(VENV)"; python3 -m venv $(VENV); }
	@echo "==> installing the pybridge Python package into $(VENV)"
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test,lint]'
	@touch $@

build: setup
	@rebar3 compile > _build.log 2>&1 || { cat _build.log; exit 1; }
	@rm -f _build.log

demo: build
	@mkdir -p _build/demo
	@erlc -o _build/demo examples/demo.erl
	@erl -noshell -pa $(EBIN) -pa _build/demo -eval 'demo:main()' -s init stop

test: build test-pythons test-erlang test-pure test-fuzz test-consumers

test-python:
	@$(PY) -m pytest -q

# The same suite under every CPython 3.10+ found (pyenv's, PATH's), each in its own venv
# (.venvs/X.Y), one after the other; make test runs this rather than test-python.
test-pythons: build
	@tests/pythons/run.sh

test-erlang:
	@rebar3 eunit

# The suites that drive the worker's per-frame hot path (frames, shared memory, sockets,
# large replies, coroutines, zero_copy views, every driver API call under both lockings,
# slow consumers, threads sending) again with its pure-Python classes (PYBRIDGE_PURE=1, docs/DEPLOYMENT.md):
# both paths must behave alike. Both whole suites twice would not fit make test's 15
# minutes; `PYBRIDGE_PURE=1 make test-python test-erlang` runs them all that way.
COMMA := ,
PURE_PYTEST := $(addprefix tests/python/,test_frames.py test_shm.py test_transport.py \
	test_large_replies.py test_asyncio.py test_plugin.py test_zero_copy.py test_numpy.py \
	test_accel_conn.py)
PURE_EUNIT := $(addprefix pybridge_,tests api_tests slow_consumer_tests locking_tests \
	asyncio_tests garbage_tests limits_tests)
test-pure:
	@PYBRIDGE_PURE=1 $(PY) -m pytest -q $(PURE_PYTEST)
	@PYBRIDGE_PURE=1 rebar3 eunit --module=$(subst $() ,$(COMMA),$(strip $(PURE_EUNIT)))

# pybridge as the git dependency of a rebar3 and of a mix project, each also run from a
# release (docs/DEPLOYMENT.md). State in _build/consumers.
test-consumers: setup
	@tests/consumers/run.sh

# Issue 6's static checks: ruff, mypy --strict (the pybridge package), dialyzer, and the C
# sources compiled with -Werror into _build/lint (the real build is left alone). One line
# each when clean, the whole output of what is not; non-zero if anything fails. Not part of
# make test: its first run on a machine builds dialyzer's PLT (about 80 s).
LINT := _build/lint
LINT_CFLAGS := -O2 -Wall -Wextra -Werror
PY_INCLUDE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_path("include"))')
lint: setup python-dev
	@mkdir -p $(LINT); inc="$(ERL_INCLUDE)"; pyinc=$$("$$($(PYCONFIG))" --includes); rc=0; \
	check() { what=$$1; shift; \
	  if "$$@" > $(LINT)/last.log 2>&1; then echo "$$what: $$(tail -n 1 $(LINT)/last.log)"; \
	  else echo "$$what: FAILED"; cat $(LINT)/last.log; rc=1; fi; }; \
	cwarn() { $(CC) $(LINT_CFLAGS) -I"$$inc" -c -o $(LINT)/$$(basename $$1 .c).o "$$@"; }; \
	check ruff $(PY) -m ruff check .; \
	check mypy $(PY) -m mypy; \
	check dialyzer eval 'REBAR_COLOR=none rebar3 dialyzer && echo "no warnings"'; \
	check "cc $(LINT_CFLAGS)" eval '(for f in c_src/*.c; do cwarn $$f -std=c11 -fPIC || exit 1; done) && \
	  cwarn bench/echo_drv.c -fPIC && cwarn bench/floor.c && \
	  cwarn bench/inproc_nif.c -fPIC $$pyinc -DPB_LIBPYTHON=\"lib\" && \
	  cwarn fuzz/fuzz_frames.c && cwarn fuzz/erl_driver_doubles.c && \
	  (for f in pybridge/_wire/_accel*.c; do \
	    cwarn $$f -fPIC -Wno-unused-parameter -I$(PY_INCLUDE) || exit 1; done) && \
	  echo "c_src/*.c, bench/*.c, fuzz/*.c, pybridge/_wire/_accel*.c: no warnings"'; \
	exit $$rc

# The long run of issue 5: RSS and descriptors of the VM and the worker stay flat.
soak: build
	@mkdir -p _build/soak && erlc -o _build/soak tests/soak/pb_soak.erl
	@erl -noshell -pa $(EBIN) -pa _build/soak -eval 'pb_soak:main()'

# libFuzzer on the driver's frame reading and dispatch and its term programs, from
# fuzz/corpus: those units of c_src (and the ones they call), linked against the
# erl_driver stand-ins of fuzz/erl_driver_doubles.c.
# make fuzz runs FUZZ_SECONDS (default 600); make test runs it for 45 s (about 0.9 M runs).
FUZZ := _build/fuzz/fuzz_frames
FUZZ_SECONDS ?= 600
FUZZ_UNITS := $(addprefix c_src/,channel.c frames.c api_calls.c shm.c termprog.c pids.c \
	user_port.c request.c etf.c workers.c named.c)
$(FUZZ): fuzz/fuzz_frames.c fuzz/erl_driver_doubles.c $(FUZZ_UNITS) $(wildcard c_src/*.h)
	@mkdir -p _build/fuzz/work
	@clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -I$(ERL_INCLUDE) fuzz/fuzz_frames.c fuzz/erl_driver_doubles.c $(FUZZ_UNITS) -o $@ -ldl

fuzz: system $(FUZZ)
	@$(FUZZ) -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=_build/fuzz/ -print_final_stats=1 \
	  _build/fuzz/work fuzz/corpus

test-fuzz: system $(FUZZ)
	@$(FUZZ) -max_total_time=45 -artifact_prefix=_build/fuzz/ _build/fuzz/work fuzz/corpus \
	  > _build/fuzz/last.log 2>&1 || { tail -40 _build/fuzz/last.log; exit 1; }
	@grep -E "^Done [0-9]+ runs" _build/fuzz/last.log | sed 's/^/fuzz: /'

# Issue 4's scenarios for pybridge and its baselines in one run (see docs/PERFORMANCE.md).
BENCH := _build/bench
ERL_INCLUDE = $(shell erl -noshell -eval 'io:format("~ts/erts-~ts/include", [code:root_dir(), erlang:system_info(version)]), halt().')
# The in-process baseline embeds the venv's Python: the python3.X-config of its base
# install gives headers and libpython (for Debian's Python, python3-dev brings them).
PYCONFIG = $(PY) -c 'import sysconfig as s; print(s.get_config_var("BINDIR") + "/python" + s.get_config_var("VERSION") + "-config")'
PYSONAME = $(PY) -c 'import sysconfig as s; print(s.get_config_var("INSTSONAME"))'
python-dev: setup
	@cfg=$$($(PYCONFIG)); \
	if ! [ -x "$$cfg" ] || ! "$$cfg" --embed --ldflags >/dev/null 2>&1 || \
	    ! [ -f "$$($(PY) -c 'import sysconfig as s; print(s.get_config_var("INCLUDEPY"))')/Python.h" ]; then \
	  echo "==> installing Debian packages: python3-dev"; \
	  SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-dev >/dev/null; \
	fi

bench: build python-dev
	@$(PY) -c 'import numpy' 2>/dev/null || { echo "==> installing the bench extra (NumPy) into $(VENV)"; \
	  $(PY) -m pip install -q --disable-pip-version-check -e '.[test,lint,bench]'; }
	@mkdir -p $(BENCH) bench/results
	@cc -O2 -fPIC -shared -I$(ERL_INCLUDE) -o $(BENCH)/pb_bench_echo.so bench/echo_drv.c
	@cfg=$$($(PYCONFIG)); cc -O2 -fPIC -shared -I$(ERL_INCLUDE) $$("$$cfg" --includes) \
	  -DPB_LIBPYTHON="\"$$($(PYSONAME))\"" -o $(BENCH)/pb_bench_inproc.so bench/inproc_nif.c \
	  $$("$$cfg" --embed --ldflags) -Wl,-rpath,$$($(PY) -c 'import sysconfig as s; print(s.get_config_var("LIBDIR"))')
	@cc -O2 -o $(BENCH)/floor bench/floor.c
	@erlc -o $(BENCH) bench/pb_bench.erl bench/pb_bench_measure.erl bench/pb_bench_inproc.erl \
	  bench/pb_bench_pool.erl
	@PB_BENCH_OUT=$(abspath bench/results/$(if $(PB_BENCH_ONLY),partial,latest).json) \
	  PB_BENCH_FLOOR=$(abspath $(BENCH)/floor) PB_BENCH_SPAWN=$(abspath bench/spawn_echo.py) \
	  erl -noshell -pa $(EBIN) -pa $(BENCH) -eval 'pb_bench:main()' -s init stop
	@$(if $(PB_BENCH_ONLY),,$(MAKE) -s bench-instructions)
	@$(if $(PB_BENCH_ONLY),,$(PY) bench/report.py)

# The worker's CPU instructions per control and per echoed message, compiled hot path and
# pure Python side by side, counted with callgrind (skipped without valgrind).
bench-instructions: build
	@bench/instructions.sh $(abspath $(PY)) $(abspath $(EBIN))

# The EUnit suite with the driver built with AddressSanitizer and UBSan, loaded into the
# stock emulator with the sanitizer runtimes preloaded. The normal build is restored after.
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan: setup
	@$(MAKE) -s -C c_src clean && $(MAKE) -s -C c_src SAN="$(SAN_FLAGS)"
	@LD_PRELOAD="$$(cc -print-file-name=libasan.so):$$(cc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  rebar3 eunit; rc=$$?; $(MAKE) -s -C c_src clean; $(MAKE) -s -C c_src; exit $$rc

# Issue 5: memcheck over 10,000 port open/close cycles, on OTP's valgrind emulator built
# once into _build/valgrind from the Debian source of the installed Erlang. Not in make test.
valgrind: build
	@tests/valgrind/run.sh

clean:
	rm -rf _build $(VENV) erlang/priv *.egg-info pybridge/_wire/_accel*.so
