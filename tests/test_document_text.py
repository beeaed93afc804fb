"""Documents are parsed in their normal form and syntax errors found with comments emptied
(graph/engine/document_text.py): for any text, what the parser makes of it (the document, or the syntax error and
where it is) is the same as for the text the client sent, and every error is located in that text."""

import pytest
from graphql import DocumentNode, GraphQLError, Node, parse
from graphql.language import print_ast
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.engine import document_text
from graph.engine.document_text import in_client_text, normalised, without_comments
from graph.schema import AuditGraphSchema, build_schema
from tests.api import Api

# The pieces that matter to where a comment starts and ends: quotes of each kind, escapes, line ends,
# surrogates (a lone one ends a comment; a pair does not), and ordinary tokens.
PIECES = ('"', '"""', "\\", '\\"', '\\"""', "#", "\n", "\r", " ", "{", "}", "(", ")", ":", "a", "x: 1",
          "\ud83d\ude00", "\ud800", "é", "$v", "query", "...", "@d")


def parsed(text: str) -> object:
    try:
        return print_ast(parse(text))
    except GraphQLError as error:
        return error.message, error.locations


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_the_parser_makes_the_same_of_a_text_without_its_comments(text: str) -> None:
    assert parsed(without_comments(text)) == parsed(text), ascii(text)


@pytest.mark.parametrize("text", ['{ a(s: "x # y") # c\n b }', '{ a(s: """ # \\""" # """) # z\n}',
                                  '{ a(s: "open # x\n) }', '{ a(s: """open # x\n # y\n', "#" * 10 + "\n{ a }"])
def test_strings_keep_their_hashes_and_errors_their_places(text: str) -> None:
    assert parsed(without_comments(text)) == parsed(text), ascii(text)


async def test_a_syntax_error_behind_a_long_comment_is_where_the_client_wrote_it(api: Api) -> None:
    document = "# a" + "x" * (1 << 19) + "\n{ me { id } \n  ) }"
    [error] = (await api.post(document))["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["locations"] == [{"line": 3, "column": 3}]


# Tokens, and what may stand between two of them: the layouts a client may give one document.
TOKENS = ("{", "}", "(", ")", ":", "a", "b", "$v", "1", "2.5", '"s # ,"', '"""x\n # y"""', "...", "@d", "on",
          "query", "[", "]", "=", "!", "|", "&")
SEPARATORS = (" ", "  ", "\n", "\r\n", "\t", ",", " , ", "# c\n", "\n# c #\n  ", "\ufeff")


@st.composite
def layouts(draw: st.DrawFn) -> tuple[str, str]:
    """Two layouts of the same tokens: a separator between each, before the first and after the last."""
    tokens = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25))

    def layout() -> str:
        separators = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(tokens) + 1,
                                   max_size=len(tokens) + 1))
        return "".join(separator + token for token, separator in zip(tokens, separators)) + separators[-1]

    return layout(), layout()


@settings(max_examples=2000, deadline=None)
@given(layouts())
def test_layouts_of_the_same_tokens_have_one_normal_form(texts: tuple[str, str]) -> None:
    first, second = texts
    assert normalised(first) == normalised(second), (ascii(first), ascii(second))


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(PIECES + SEPARATORS), max_size=30).map("".join))
def test_the_parser_makes_the_same_of_a_text_and_its_normal_form(text: str) -> None:
    try:
        document = parse(text)
    except GraphQLError:
        return
    assert print_ast(parse(normalised(text))) == print_ast(document), ascii(text)


def _nodes(node: Node) -> list[Node]:
    """Every node below a document and the nodes below them, in one fixed order. Not the document itself: it
    starts where the text starts, before any ignored characters, and no error names it."""
    found = [] if isinstance(node, DocumentNode) else [node]
    for key in node.keys:
        value = getattr(node, key)
        for child in value if isinstance(value, tuple | list) else (value,):
            if isinstance(child, Node):
                found.extend(_nodes(child))
    return found


QUERIES = ("query Q($v: Int = 1, $w: [String!]) {\n  a(x: $v, y: \"s # ,\") @d {\n    ... on T { b }\n  }\n}\n",
           "# lead\n{a{b}},,, {c(x: \"\"\"\n  block # not a comment\n\"\"\") { d } } # tail",
           "\ufeff\r\n{ a\r\n  b\r  c\n}\n\nfragment F on T { e, f }")


@pytest.mark.parametrize("most_pieces", [document_text.MOST_PIECES, 5])
@pytest.mark.parametrize("text", QUERIES)
def test_every_node_of_the_normal_form_is_located_in_the_client_text(text: str, most_pieces: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # (with 5, past the fifth string or run each text is kept as sent)
    monkeypatch.setattr(document_text, "MOST_PIECES", most_pieces)
    # given: the document parsed from the text itself, and from its normal form
    sent, normal = _nodes(parse(text)), _nodes(parse(normalised(text)))
    # when: each node of the normal form is named by an error, put back into the client's text
    errors = [GraphQLError("here", nodes=[node]) for node in normal]
    in_client_text(errors, text)
    # then: each names the place of the same node in the text as sent
    assert [error.locations for error in errors] == [GraphQLError("here", nodes=[node]).locations for node in sent]


@settings(max_examples=1000, deadline=None)
@given(layouts())
def test_a_location_in_the_normal_form_is_put_back_at_its_token(texts: tuple[str, str]) -> None:
    text = texts[0]
    try:
        sent = _nodes(parse(text))
    except GraphQLError:
        return
    errors = [GraphQLError("here", nodes=[node]) for node in _nodes(parse(normalised(text)))]
    in_client_text(errors, text)
    assert [error.locations for error in errors] == [GraphQLError("here", nodes=[node]).locations for node in sent]


async def test_layouts_of_one_document_share_its_parse() -> None:
    schema = build_schema()
    assert isinstance(schema, AuditGraphSchema)
    for text in ("{ __typename }", "{\n  __typename\n}\n", "# the type\n{ __typename, }"):
        assert (await schema.execute(text)).data == {"__typename": "Query"}
    assert len(schema.parsed.cache) == 1


@pytest.mark.parametrize("text", ["{ me { id } nope }", "{\n  me {\n    id\n  }\n  # unknown:\n  nope\n}"])
async def test_a_validation_error_names_the_place_in_the_text_each_client_sent(api: Api, text: str) -> None:
    line, column = _place(text, "nope")
    # given: the other layout answered first, so its normal form is in every cache
    for other in ("{ me { id } nope }", "{\n  me {\n    id\n  }\n  # unknown:\n  nope\n}"):
        await api.post(other)
    [error] = (await api.post(text))["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["locations"] == [{"line": line, "column": column}]


@pytest.mark.parametrize("text", ["{ users { totalCount } }", "query {\n\n      users {\n  totalCount }\n}"])
async def test_a_field_error_names_the_place_in_the_text_each_client_sent(api: Api, text: str) -> None:
    token = await api.sign_up("layout@example.com")
    line, column = _place(text, "users")
    for other in ("{ users { totalCount } }", "query {\n\n      users {\n  totalCount }\n}"):
        await api.post(other, token=token)
    body = await api.post(text, token=token)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["locations"] == [{"line": line, "column": column}]


def _place(text: str, word: str) -> tuple[int, int]:
    before = text[:text.index(word)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
