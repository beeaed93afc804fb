"""A document's text as the caches and the parser take it, and error locations put back into the client's text.

graphql-core's lexer walks a comment one character at a time in Python: a
1 MiB comment cost a tenth of a second of CPU before anything could refuse
the document. Regular expressions find the comments, strings and runs of
ignored characters in C.

A document that parses is parsed, and kept by every cache of what is worked
out from it, in its normal form: its tokens with one space between each
(comments, commas, line ends and indentation dropped). Clients that format
one query differently share one entry. Every error's `locations` is then put
back into the text that client sent (`in_client_text`): a location names
where a node's first token starts, and the normal form moves no token past
another, so the token it names is found again in the client's text.
"""

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import islice

from graphql import DocumentNode, GraphQLError, Source, SourceLocation

# Strings first, so a '#' or a space inside one is not taken for a comment or an ignored run. A string that
# is not closed is kept as it was, up to where graphql-core's lexer stops reading it (the end of the document
# for a block string, of its line for another), so even its syntax error points where it would have.
_STRINGS = (
    # Each loop unrolled (a run of ordinary characters, then one special), so the engine takes a run in one
    # step: an alternation tried at every character walked a 1 MiB comment at a sixth of a second.
    r'(?P<block>"""[^"\\]*(?:(?:\\"""|\\(?!""")|"(?!""))[^"\\]*)*"""|"""[\s\S]*\Z)'
    r'|(?P<string>"[^"\\\n\r]*(?:\\.[^"\\\n\r]*)*"|"[^\n\r]*)'
)
# graphql-core ends a comment at a lone surrogate (then refuses it as a character): so do these.
_COMMENT = r"#[^\n\r\ud800-\udfff]*(?:[\ud800-\udbff][\udc00-\udfff][^\n\r\ud800-\udfff]*)*"
_STRING_OR_COMMENT = re.compile(f"{_STRINGS}|{_COMMENT}")
# What graphql-core's lexer skips between tokens: white space, line ends, commas, a byte order mark, comments.
_IGNORED = r"[ \t\n\r,\ufeff]"
_STRING_OR_IGNORED = re.compile(rf"{_STRINGS}|(?:{_IGNORED}+|{_COMMENT})+")
_IGNORED_RUN = re.compile(f"{_IGNORED}+")
# ~0.4 µs each in Python: at most a dozen milliseconds per text, where a document the default token limit
# (5,000) lets parse has fewer than half as many.
MOST_PIECES = 1 << 15


def _kept(match: re.Match[str]) -> str:
    if match.lastgroup:
        return match.group()
    # A comment that ends at the end of the document ("Unexpected <EOF>") or at a character the lexer refuses
    # is followed by a place an error may name: it keeps its width, as spaces (which the lexer skips three
    # times as fast as it walks a comment, and no slower than spaces a client sends).
    end = match.end()
    # An empty comment, not none: a "\r" before it and a "\n" after it would become one line end.
    return "#" if match.string[end:end + 1] in ("\n", "\r") else " " * (end - match.start())


def without_comments(text: str) -> str:
    """The text with its comments emptied: every token, and so every syntax error, stays where it was."""
    return _STRING_OR_COMMENT.sub(_kept, text) if "#" in text else text


def _separator(match: re.Match[str]) -> str:
    if match.lastgroup:
        return match.group()
    return "" if match.start() == 0 or match.end() == len(match.string) else " "


def _pieces(text: str) -> re.Pattern[str]:
    """What `normalised` matches in the text: every string and ignored run, or (without strings and comments,
    where a run needs no decision in Python) the runs alone."""
    return _STRING_OR_IGNORED if '"' in text or "#" in text else _IGNORED_RUN


def normalised(text: str) -> str:
    """The text's tokens with one space between each: the same document for the parser, whatever the layout.

    Past its first MOST_PIECES strings and runs, a text is kept as sent: a document that has more tokens than
    any token limit lets parse costs its sender no more than a few milliseconds here.
    """
    pieces = _pieces(text)
    if pieces is _IGNORED_RUN:
        # In C: every run one space, then the runs at the ends none (no token follows a trailing run).
        return pieces.sub(" ", text, count=MOST_PIECES).strip(" ")
    return pieces.sub(_separator, text, count=MOST_PIECES)


def _client_offsets(text: str) -> Callable[[int], int]:
    """Where, in `text`, the token starts that starts at a given offset of its normal form."""
    # For each ignored run: where it starts in the normal form, and how far the text is ahead after it.
    starts: list[int] = []
    ahead: list[int] = []
    moved = 0
    for match in islice(_pieces(text).finditer(text), MOST_PIECES):
        if not match.lastgroup:
            # A run before the first token is left out of the normal form: the token at its start follows it.
            starts.append(match.start() - moved - (match.start() == 0))
            moved += match.end() - match.start() - (0 if match.start() == 0 or match.end() == len(text) else 1)
            ahead.append(moved)

    def offset(position: int) -> int:
        run = bisect_left(starts, position)
        return position + (ahead[run - 1] if run else 0)

    return offset


def parsed_text(document: DocumentNode) -> str:
    """The text a document was parsed from (its normal form, through the parse cache): the key of every cache
    of what is worked out from it."""
    assert document.loc is not None
    return document.loc.source.body


def in_client_text(errors: Sequence[GraphQLError], text: str | None) -> None:
    """Puts the locations of errors found in the normal form of `text` back into `text` itself."""
    if text is None:
        return
    form: str | None = None
    source, offset = Source(text), None
    located: dict[int, SourceLocation] = {}
    for error in errors:
        if error.source is None or not error.positions or error.source.body == text:
            continue
        form = normalised(text) if form is None else form
        if error.source.body != form:
            continue
        offset = offset or _client_offsets(text)
        for position in error.positions:
            if position not in located:
                located[position] = source.get_location(offset(position))
        error.locations = [located[position] for position in error.positions]
