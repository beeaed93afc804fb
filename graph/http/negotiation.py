"""What a client prefers, read from its Accept header by q-value and, between equals, by order.

GraphQL clients list every media type they can read, most wanted first and
mostly without q-values: urql's default names `text/event-stream` fourth,
after three JSON types, because it can read a stream, not because it wants a
query answered as one. So a media type's rank is its q-value, then whether it
was named outright rather than matched by a wildcard, then how early it comes.

Wildcards (`*/*`, `application/*`) stand for `application/json` only: the
GraphQL over HTTP spec answers such a client, written before the newer media
type, with JSON, and nobody is sent a stream they did not name.
"""

from functools import lru_cache
from typing import NamedTuple

from mimeparse import parse_media_range

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
EVENT_STREAM = "text/event-stream"
OFFERED = (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON, EVENT_STREAM)
# Distinct Accept headers whose ranks are kept: clients send a handful, each on every request.
KEPT_HEADERS = 256


class Rank(NamedTuple):
    """How much a client wants one media type; of two ranks, the greater is preferred."""

    quality: float
    # 2 named outright, 1 by `type/*`, 0 by `*/*`.
    specificity: int
    # Minus the place in the header: the earlier, the greater.
    order: int

    @property
    def accepted(self) -> bool:
        return self.quality > 0


NOT_NAMED = Rank(0.0, -1, 0)
# No Accept header at all: a client from before the newer media type.
ANYTHING = {APPLICATION_JSON: Rank(1.0, 0, 0)}


def _specificity(kind: str, subtype: str, offered: str) -> int | None:
    """How closely the range `kind/subtype` names `offered`, or None if it does not cover it."""
    if f"{kind}/{subtype}" == offered:
        return 2
    if offered != APPLICATION_JSON or subtype != "*":
        return None
    return 0 if kind == "*" else 1 if kind == "application" else None


@lru_cache(maxsize=KEPT_HEADERS)
def _ranks(accept: str) -> dict[str, Rank]:
    ranks: dict[str, Rank] = {}
    for position, part in enumerate(accept.split(",")):
        if not part.strip():
            continue
        try:
            kind, subtype, params = parse_media_range(part)
        except ValueError:
            continue  # one range that does not parse leaves the others standing
        for offered in OFFERED:
            specificity = _specificity(kind.lower(), subtype.lower(), offered)
            # The most specific range that covers a type gives its q-value (RFC 9110, 12.5.1); among equals, the first.
            if specificity is not None and specificity > ranks.get(offered, NOT_NAMED).specificity:
                ranks[offered] = Rank(float(params["q"]), specificity, -position)
    return ranks


def rank(accept: str | None, media_type: str) -> Rank:
    """How much the client sending `accept` wants `media_type` (one of OFFERED)."""
    ranks = _ranks(accept) if accept and accept.strip() else ANYTHING
    return ranks.get(media_type, NOT_NAMED)


def json_media_type(accept: str | None) -> str:
    """The JSON media type that answers a query or mutation: graphql-response+json when the client prefers it,
    else application/json (also to a client that accepts neither: the spec's answer to a legacy client)."""
    preferred = rank(accept, GRAPHQL_RESPONSE_JSON)
    return GRAPHQL_RESPONSE_JSON if preferred.accepted and preferred > rank(accept, APPLICATION_JSON) \
        else APPLICATION_JSON


def accepts_stream(accept: str | None) -> bool:
    """The client can read Server-Sent Events: a subscription over plain HTTP streams."""
    return rank(accept, EVENT_STREAM).accepted


def prefers_stream(accept: str | None) -> bool:
    """The client wants Server-Sent Events over either JSON type: a query or mutation is answered as a stream."""
    stream = rank(accept, EVENT_STREAM)
    return stream.accepted and all(stream > rank(accept, json) for json in (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON))
