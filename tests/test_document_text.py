"""Documents are parsed with their comments emptied (graph/engine/document_text.py): for any text, what the parser
makes of it (the document, or the syntax error and where it is) is the same as for the text the client sent."""

import pytest
from graphql import GraphQLError, parse
from graphql.language import print_ast
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.engine.document_text import without_comments
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
