%% The Erlang face of bench/inproc_nif.c, the in-process baseline of `make bench`: CPython
%% embedded in this VM, its functions called per call as in-process bridges do.
-module(pb_bench_inproc).
-export([load/3, control/1, control_normal/1, call/1, call_normal/1, terms/1]).

%% So, the NIF library without its suffix; Python, the interpreter to embed (its prefix and
%% venv); Dir, the directory of inproc.py.
-spec load(string(), string(), string()) -> ok | {error, term()}.
load(So, Python, Dir) -> erlang:load_nif(So, {Python, Dir}).

%% Dirty CPU scheduler: the bytes inproc.control(Data) returns.
-spec control(binary()) -> binary().
control(_Data) -> erlang:nif_error(not_loaded).

%% control/1 on a normal scheduler.
-spec control_normal(binary()) -> binary().
control_normal(_Data) -> erlang:nif_error(not_loaded).

%% Dirty CPU scheduler: Term as Python objects to inproc.call, its answer back as a term.
-spec call(term()) -> term().
call(_Term) -> erlang:nif_error(not_loaded).

%% call/1 on a normal scheduler.
-spec call_normal(term()) -> term().
call_normal(_Term) -> erlang:nif_error(not_loaded).

%% Dirty CPU scheduler: inproc.terms sends the caller N terms {ok, 42, <<"hello">>, 3.5, done}.
-spec terms(non_neg_integer()) -> ok.
terms(_N) -> erlang:nif_error(not_loaded).
