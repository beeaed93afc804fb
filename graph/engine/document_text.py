"""A document's text with its comments emptied, for the parser.

graphql-core's lexer walks a comment one character at a time in Python: a
1 MiB comment cost a tenth of a second of CPU before anything could refuse
the document. A regular expression finds the comments in C. A comment runs
to the end of its line, so removing it moves no token: every error location
(line and column) is the same as in the text the client sent.
"""

import re

# Strings first, so a '#' inside one is not taken for a comment. A string that
# is not closed is kept as it was, up to where graphql-core's lexer stops
# reading it (the end of the document for a block string, of its line for
# another), so even its syntax error points where it would have.
_STRING_OR_COMMENT = re.compile(
    # Each loop unrolled (a run of ordinary characters, then one special), so the engine takes a run in one
    # step: an alternation tried at every character walked a 1 MiB comment at a sixth of a second.
    r'(?P<block>"""[^"\\]*(?:(?:\\"""|\\(?!""")|"(?!""))[^"\\]*)*"""|"""[\s\S]*\Z)'
    r'|(?P<string>"[^"\\\n\r]*(?:\\.[^"\\\n\r]*)*"|"[^\n\r]*)'
    # graphql-core ends a comment at a lone surrogate (then refuses it as a character): so does this.
    r"|#[^\n\r\ud800-\udfff]*(?:[\ud800-\udbff][\udc00-\udfff][^\n\r\ud800-\udfff]*)*"
)


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
    return _STRING_OR_COMMENT.sub(_kept, text) if "#" in text else text
