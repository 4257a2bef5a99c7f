%% Imports are per driver (issue 12): a directory given to one open ({python_path, [Dir]})
%% is seen by the drivers opened with it only; its csv.py or fractions.py replaces the
%% standard module for them alone, never for another caller's driver; two such directories
%% may each have a helper of the same name, each driver gets its own. A directory of the
%% app env python_path holding a module of a standard name is refused at open, naming it.
-module(pybridge_imports_tests).
-include_lib("eunit/include/eunit.hrl").

imports_test_() ->
    {setup,
     fun() -> {A, B, Shadow} = dirs(), start([]), {A, B, Shadow} end,
     fun(_) -> application:stop(pybridge) end,
     fun({A, B, Shadow}) ->
         [{"an open's directory is its own", fun() -> per_open(A, B) end},
          {"a shared directory that shadows is refused", fun() -> shadowing_shared(Shadow) end}]
     end}.

per_open(A, B) ->
    Self = self(),
    %% caller 1 opens the driver of directory A, with its fractions.py, csv.py, helper.py
    Caller = spawn(fun() ->
        P = pybridge:open("a_drv:D", [binary, {python_path, [A]}]),
        Self ! {a, P, pybridge:call(P, 0, marks)},
        receive stop -> ok end
    end),
    {PA, MarksA} = receive {a, P0, M0} -> {P0, M0} after 10000 -> error(no_a) end,
    ?assertEqual([<<"A fractions">>, <<"A csv">>, <<"A helper">>, <<"A helper.sub">>], MarksA),
    %% caller 2's driver, from the shared python_path, imports the standard ones, and not
    %% A's helper at all
    Q = pybridge:open("imports_shared:ImportsShared", [binary]),
    ?assertEqual(undefined, pybridge:call(Q, 0, <<"fractions">>)),
    ?assertEqual(undefined, pybridge:call(Q, 0, <<"csv">>)),
    ?assertEqual(<<"ModuleNotFoundError">>, pybridge:call(Q, 0, <<"helper">>)),
    ?assertEqual(<<"ModuleNotFoundError">>, pybridge:call(Q, 0, <<"a_drv">>)),
    %% directory B's helper has the same name: its driver gets its own, A keeps its own
    PB = pybridge:open("b_drv:D", [binary, {python_path, [B]}]),
    ?assertEqual(<<"B helper">>, pybridge:call(PB, 0, marks)),
    ?assertEqual(MarksA, pybridge:call(PA, 0, marks)),
    %% a port its driver creates imports from the same private directories
    C = pybridge:open("creates:D", [binary, {python_path, [A]}]),
    ?assertEqual("A helper", pybridge:control(C, 1, <<>>)),
    Child = receive {created, Ch} -> Ch after 5000 -> error(no_child) end,
    ?assertEqual("A helper", erlang:port_control(Child, 2, <<>>)),
    port_close(Child),
    port_close(C),
    %% an exception class of a private module keeps its module's plain name
    ?assertError({python, 'a_drv.Oops', <<"oops">>, _}, pybridge:call(PA, 1, x)),
    port_close(PB),
    port_close(Q),
    Caller ! stop.

shadowing_shared(Shadow) ->
    application:stop(pybridge),
    start([Shadow]),
    {'EXIT', {{python, 'builtins.ImportError', Msg, _}, _}} =
        (catch pybridge:open("shadow_drv:D", [])),
    ?assertMatch({_, _}, binary:match(Msg, <<"csv.py would replace the standard library's module 'csv'">>)),
    %% the other shared directory serves as before
    ?assert(pybridge:close(pybridge:open("upper:Upper", []))).

start(More) ->
    _ = application:load(pybridge),
    ok = application:set_env(pybridge, python_path, [filename:absname("tests/drivers") | More]),
    {ok, _} = application:ensure_all_started(pybridge).

%% Three fresh directories: A and B of two opens, Shadow for the app env.
dirs() ->
    Root = filename:join(filename:basedir(user_cache, "pybridge_test"),
                         "imports_" ++ integer_to_list(erlang:unique_integer([positive]))),
    [A, B, Shadow] = [filename:join(Root, D) || D <- ["a", "b", "shadow"]],
    write(A, "fractions.py", "MARK = 'A fractions'\n"),
    write(A, "csv.py", "MARK = 'A csv'\n"),
    write(A, "helper/__init__.py", "MARK = 'A helper'\nfrom . import sub\n"),
    write(A, "helper/sub.py", "MARK = 'A helper.sub'\n"),
    write(A, "a_drv.py",
          "import fractions, csv, helper\nimport helper.sub\nimport pybridge\n"
          "class Oops(Exception):\n    pass\n"
          "class D(pybridge.Driver):\n"
          "    def call(self, c, t):\n"
          "        if c == 1:\n            raise Oops('oops')\n"
          "        import fractions as f\n"
          "        return [f.MARK, csv.MARK, helper.MARK, helper.sub.MARK]\n"),
    write(A, "creates.py",
          "import pybridge, helper\n"
          "class D(pybridge.Driver):\n"
          "    def control(self, c, d):\n"
          "        if c == 1:\n"
          "            child = self.port.create_port(self.port.caller())\n"
          "            child.send_term(child.connected(), (pybridge.Atom('created'), child))\n"
          "        return helper.MARK\n"),
    write(B, "helper.py", "MARK = 'B helper'\n"),
    write(B, "b_drv.py",
          "import pybridge\nfrom helper import MARK\n"
          "class D(pybridge.Driver):\n    def call(self, c, t):\n        return MARK\n"),
    write(Shadow, "csv.py", "MARK = 'shadow csv'\n"),
    write(Shadow, "shadow_drv.py", "import pybridge\nclass D(pybridge.Driver):\n    pass\n"),
    {A, B, Shadow}.

write(Dir, Name, Text) ->
    File = filename:join(Dir, Name),
    ok = filelib:ensure_dir(File),
    ok = file:write_file(File, Text).
