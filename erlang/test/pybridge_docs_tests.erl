%% The error reasons of pybridge:error_reason() are the ones its module doc, README.md and
%% docs/TROUBLESHOOTING.md list, and the start errors of pybridge_diagnose:start_reason()
%% the ones TROUBLESHOOTING.md lists, so that neither the types nor the docs drift alone.
-module(pybridge_docs_tests).
-include_lib("eunit/include/eunit.hrl").

%% A reason as compared: badarg, python (any {python, ...}) or {pybridge, Atom}.
-type reason() :: atom() | {pybridge, atom()}.

type_and_module_doc_agree_test() ->
    ?assertEqual(type_reasons(), doc_reasons(module_doc())).

type_and_readme_agree_test() ->
    ?assertEqual(type_reasons(), table_reasons(section("README.md", "Errors raised by"))).

type_and_troubleshooting_agree_test() ->
    Guide = "docs/TROUBLESHOOTING.md",
    Raised = section(Guide, "## Opening a port fails") ++ section(Guide, "## `control` / `call` fail"),
    ?assertEqual(type_reasons(), table_reasons(Raised)).

%% The reasons the application's start fails with: pybridge_diagnose:start_reason() and the
%% table of TROUBLESHOOTING.md's "The application does not start", by their tag.
start_reasons_and_troubleshooting_agree_test() ->
    {ok, {pybridge_diagnose, [{abstract_code, {raw_abstract_v1, Forms}}]}} =
        beam_lib:chunks(code:which(pybridge_diagnose), [abstract_code]),
    [{type, _, union, Types}] = [T || {attribute, _, type, {start_reason, T, []}} <- Forms],
    Tags = lists:usort([case T of {atom, _, A} -> A; {type, _, tuple, [{atom, _, A} | _]} -> A end
                        || T <- Types]),
    Rows = [Cell || "| `" ++ Rest <- section("docs/TROUBLESHOOTING.md", "## The application does not start"),
                    [Cell | _] <- [string:split(Rest, "`")]],
    Documented = lists:usort([list_to_atom(hd(string:lexemes(C, "{, "))) || C <- Rows]),
    ?assertEqual(Tags, Documented).

%% The reasons in the compiled -type error_reason().
-spec type_reasons() -> [reason()].
type_reasons() ->
    {ok, {pybridge, [{abstract_code, {raw_abstract_v1, Forms}}]}} =
        beam_lib:chunks(code:which(pybridge), [abstract_code]),
    [Type] = [T || {attribute, _, type, {error_reason, T, []}} <- Forms],
    lists:usort(reasons(Type)).

-spec reasons(erl_parse:abstract_type()) -> [reason()].
reasons({type, _, union, Types}) -> lists:append([reasons(T) || T <- Types]);
reasons({atom, _, Atom}) -> [Atom];
reasons({type, _, tuple, [{atom, _, python} | _]}) -> [python];
reasons({type, _, tuple, [{atom, _, pybridge}, Kinds]}) -> [{pybridge, K} || K <- reasons(Kinds)].

%% The @doc block of pybridge.erl, up to -module.
-spec module_doc() -> string().
module_doc() ->
    {ok, Src} = file:read_file("erlang/src/pybridge.erl"),
    [Doc, _] = string:split(unicode:characters_to_list(Src), "-module("),
    Doc.

%% The lines of File after the one starting with Heading, up to the next section heading.
-spec section(file:filename(), string()) -> [string()].
section(File, Heading) ->
    {ok, Bin} = file:read_file(File),
    Lines = string:split(unicode:characters_to_list(Bin), "\n", all),
    [_ | After] = lists:dropwhile(fun(L) -> not lists:prefix(Heading, L) end, Lines),
    lists:takewhile(fun(L) -> not lists:prefix("## ", L) end, After).

%% The first cells of the table rows among Lines.
-spec table_reasons([string()]) -> [reason()].
table_reasons(Lines) ->
    Cells = [Cell || "| `" ++ Rest <- Lines, [Cell | _] <- [string:split(Rest, "`")]],
    lists:usort(lists:append([doc_reasons(C) || C <- Cells])).

%% The reasons a piece of text names.
-spec doc_reasons(string()) -> [reason()].
doc_reasons(Text) ->
    Pybridge = [{pybridge, list_to_atom(A)}
                || [A] <- match(Text, "\\{pybridge, ([a-z_]+)\\}")],
    Python = [python || _ <- match(Text, "\\{python, ")],
    Badarg = [badarg || _ <- match(Text, "\\bbadarg\\b")],
    lists:usort(Pybridge ++ Python ++ Badarg).

-spec match(string(), string()) -> [[string()]].
match(Text, Re) ->
    case re:run(Text, Re, [global, {capture, all_but_first, list}]) of
        {match, Found} -> Found;
        nomatch -> []
    end.
