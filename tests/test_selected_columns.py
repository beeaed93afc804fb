"""Loaders select only the columns a document asks for, and still answer every field right."""

import re

import pytest
import strawberry
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db import models
from db.models import User
from graph.analyses.types import ANALYSIS_COLUMNS, FINDING_COLUMNS, SOURCE_COLUMNS, Analysis, Finding, SourceReference
from graph.engine.rows import RowShape
from graph.schema import build_schema
from graph.tasks.types import ARTIFACT_COLUMNS, EVENT_COLUMNS, TASK_COLUMNS, Artifact, Task, TaskEvent
from graph.users.types import USER_COLUMNS
from graph.users.types import User as UserType
from tests.api import Api
from tests.factories import make_analysed_task
from tests.sql_counter import count_statements

DASHBOARD = """
query { tasks(first: 10) { edges { node {
  id status originalFilename
  analysis { verdict findings { severity ruleId message } }
} } } }
"""

SHAPED_TYPES = [
    (Task, TASK_COLUMNS), (TaskEvent, EVENT_COLUMNS), (Artifact, ARTIFACT_COLUMNS), (Analysis, ANALYSIS_COLUMNS),
    (Finding, FINDING_COLUMNS), (SourceReference, SOURCE_COLUMNS), (UserType, USER_COLUMNS),
]
MODELS = {Task: models.Task, TaskEvent: models.TaskEvent, Artifact: models.Artifact, Analysis: models.Analysis,
          Finding: models.Finding, SourceReference: models.SourceReference, UserType: models.User}


async def _token_and_task(api: Api) -> str:
    token = await api.sign_up("alice@example.com")
    async with api.database.sessions() as session:
        owner = (await session.scalars(select(User).where(User.email == "alice@example.com"))).one()
    async with api.database.transaction() as session:
        await make_analysed_task(session, owner)
    return token


def _selected(statements: list[str], table: str, read_from: str | None = None) -> set[str]:
    statement = next(s for s in statements if re.search(rf"\bFROM {read_from or table}\b", s))
    columns = statement.split(" FROM ")[0]
    return set(re.findall(rf"\b{table}\.(\w+)", columns))


async def test_loaders_select_only_the_columns_the_document_needs(api: Api) -> None:
    token = await _token_and_task(api)

    with count_statements(api.database) as statements:
        await api.data(DASHBOARD, token=token)

    assert _selected(statements, "findings") == {"id", "analysis_id", "severity", "rule_id", "message"}
    # The page's statement reads its tasks' analyses too.
    assert _selected(statements, "analyses", read_from="tasks") == {"id", "task_id", "verdict"}
    # created_at: the page's sort key, which the cursor is made of.
    assert _selected(statements, "tasks") == {"id", "user_id", "status", "original_filename", "created_at"}


async def test_a_computed_field_brings_the_columns_it_reads(api: Api) -> None:
    token = await _token_and_task(api)

    with count_statements(api.database) as statements:
        data = await api.data(
            "{ tasks { edges { node { durationSeconds analysis { findings { evidence } } } } } }", token=token
        )

    assert {"started_at", "completed_at"} <= _selected(statements, "tasks")
    assert "evidence" in _selected(statements, "findings")
    node = data["tasks"]["edges"][0]["node"]
    assert node["durationSeconds"] >= 0
    assert {"measured": 12.5, "limit": 10} in [finding["evidence"] for finding in node["analysis"]["findings"]]


async def test_fields_selected_through_fragments_and_the_node_interface_are_loaded(api: Api) -> None:
    token = await _token_and_task(api)
    listed = await api.data("{ tasks { edges { node { id } } } }", token=token)
    task_id = listed["tasks"]["edges"][0]["node"]["id"]

    data = await api.data(
        """query($id: ID!) {
             node(id: $id) { id ... on Task { ...Named analysis { ... on Analysis { summary } } } }
           }
           fragment Named on Task { originalFilename fileSize }""",
        {"id": task_id}, token,
    )

    assert data["node"]["originalFilename"] == "report.pdf"
    assert data["node"]["fileSize"] is not None
    assert "summary" in data["node"]["analysis"]


@pytest.mark.parametrize(("node_type", "shape"), SHAPED_TYPES, ids=lambda value: getattr(value, "__name__", ""))
def test_every_field_of_a_shaped_type_is_a_column_or_declares_what_it_reads(
    node_type: type, shape: RowShape
) -> None:
    # A field the shape does not know makes every request that selects it
    # load every column: correct, but the saving silently gone.
    build_schema()
    definition = node_type.__strawberry_definition__  # type: ignore[attr-defined]
    unknown = [field.python_name for field in definition.fields
               if field.python_name not in shape.names and field.python_name not in shape.needs]
    assert unknown == []


def test_a_field_nobody_selected_is_missing_rather_than_none() -> None:
    @strawberry.type
    class Thing:
        a: int
        b: int | None

    shape = RowShape(always=(), a=object(), b=object())
    thing = shape.build(Thing, (1,), ("a",))

    assert thing.a == 1
    with pytest.raises(AttributeError):
        _ = thing.b


@pytest.mark.parametrize(("node_type", "shape"), SHAPED_TYPES, ids=lambda value: getattr(value, "__name__", ""))
def test_every_field_without_a_resolver_is_the_model_column_of_its_name(node_type: type, shape: RowShape) -> None:
    model = MODELS[node_type]
    definition = node_type.__strawberry_definition__  # type: ignore[attr-defined]
    plain = [field.python_name for field in definition.fields if field.base_resolver is None]

    assert plain
    assert {name: shape.columns_for([name])[0] for name in plain} == {name: getattr(model, name) for name in plain}


class _Base(DeclarativeBase):
    pass


class _FindingRow(_Base):
    """A table as a migration leaves it once it adds `owner_note` to findings (a stand-in for db/models.py)."""

    __tablename__ = "findings_with_a_note"
    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[str]
    owner_note: Mapped[str | None]


def test_a_column_added_to_the_model_and_the_type_reaches_the_shape_with_no_other_edit() -> None:
    # given: the new column declared once in graph/, as a field of the type
    @strawberry.type
    class NotedFinding:
        rule_id: str
        owner_note: str | None
        pk: strawberry.Private[int]

    # when
    shape = RowShape.of(NotedFinding, _FindingRow, pk=_FindingRow.id)

    # then: selected when asked for, and built into the object
    assert shape.names_for(frozenset({"owner_note"})) == ("pk", "owner_note")
    assert shape.build(NotedFinding, (7, "checked twice"), ("pk", "owner_note")).owner_note == "checked twice"


def test_a_field_with_neither_a_resolver_nor_a_column_is_refused_where_it_is_declared() -> None:
    @strawberry.type
    class Misnamed:
        rule_id: str
        owner_notes: str | None

    with pytest.raises(TypeError, match=r"Misnamed\.owner_notes has no resolver and _FindingRow no column owner_notes"):
        RowShape.of(Misnamed, _FindingRow, always=(), id=_FindingRow.id)
