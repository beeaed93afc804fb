"""Which parts of a filename search PostgreSQL's trigram index can find cheaply.

The index answers `ILIKE '%plant137%'` by intersecting the posting lists of every trigram of the
text ('pla', 'lan', 'ant', 'nt1', 't13', '137'). A trigram that is in nearly every name has a list
as long as the table, and the scan reads into it once per candidate: at a million tasks that was
23 ms of a 33 ms search, for 2,000 candidates that the two rare trigrams alone find in 1 ms. The
extended statistics on the names' trigrams (migration 0011, kept by ANALYZE) say how common each
trigram is; the index is asked for the rare ones, and the whole text is checked on the rows they
lead to.

One owner's search asks another index (migration 0013), whose keys are hashes of an owner and a
trigram: a key's posting list holds that owner's names only, so the table is visited for the owner's
own candidates, not for every owner's names that hold the same trigrams.
"""

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Integer, Uuid, func, literal, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

STATISTICS = "st_tasks_filename_trigrams"
# A trigram in at most this share of names narrows a search enough to look up.
RARE_SHARE = 0.05
MAX_PROBES = 3
# The trigrams pg_trgm takes from inside a word, the same in a name as in a search: ASCII letters and
# digits (other characters separate words, or are letters only in some locales).
_WORD = re.compile(r"[a-z0-9]{3,}")

_SHARES = text("""
    SELECT s.most_common_elems IS NOT NULL AS known, u.trigram, u.share
    FROM pg_stats_ext_exprs s
    LEFT JOIN LATERAL unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS u(trigram, share)
        ON u.trigram = ANY(:trigrams)
    WHERE s.statistics_schemaname = current_schema() AND s.statistics_name = :statistics
""")


def inner_trigrams(search: str) -> list[str]:
    """The trigrams inside the words of `search`, each once, in order."""
    found: dict[str, None] = {}
    for word in _WORD.findall(search.lower()):
        for start in range(len(word) - 2):
            found.setdefault(word[start:start + 3], None)
    return list(found)


async def index_probes(connection: AsyncConnection, search: str) -> tuple[str, ...] | None:
    """The rare trigrams of `search` to look up in the index, rarest first; empty when every one is
    common (then an index lookup costs more than walking the viewer's tasks in order); None when the
    statistics know nothing yet (no ANALYZE since the table was made): the whole text then."""
    trigrams = inner_trigrams(search)
    if not trigrams:
        return None
    rows = (await connection.execute(_SHARES, {"trigrams": trigrams, "statistics": STATISTICS})).all()
    if not rows or not rows[0].known:
        return None
    # A trigram too rare for the sample's most common ones is rarer than all of them.
    shares = {row.trigram: row.share for row in rows if row.trigram is not None}
    rare = sorted((trigram for trigram in trigrams if shares.get(trigram, 0.0) <= RARE_SHARE),
                  key=lambda trigram: shares.get(trigram, 0.0))
    return tuple(rare[:MAX_PROBES])


def owners_names_holding(owner: uuid.UUID, probes: Sequence[str], owner_column: Any, filename_column: Any) -> Any:
    """The condition that one owner's names hold every probe, which the index of trigrams tagged with their
    owner answers: its expression written as the index's is, so that the planner finds it."""
    keys = func.owner_trigram_keys(literal(owner, Uuid), postgresql.array([literal(probe) for probe in probes]))
    return func.owner_filename_keys(owner_column, filename_column, type_=postgresql.ARRAY(Integer)).contains(keys)
