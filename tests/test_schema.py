from pathlib import Path

from graph.schema import export_sdl

COMMITTED = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_the_committed_schema_matches_the_code() -> None:
    # Regenerate with: .venv/bin/python -m graph.schema > schema.graphql
    assert COMMITTED.read_text() == export_sdl()
