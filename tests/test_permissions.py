"""Permission classes: the same answer whoever asked before, with the field's place, on both executors."""

import uuid
from typing import Any
from unittest.mock import ANY

import pytest
import strawberry

from db.access import Viewer
from db.enums import Role
from db.settings import Settings
from graph.access.permissions import IsAdmin
from graph.context import Context
from graph.engine.compiled import CompiledExecution, PlanCache
from graph.errors import ErrorCodes
from graph.loaders import Loaders
from tests.api import Api

CLAIM = "mutation { claimNextTask { claimId } }"
USERS = "query { users { totalCount } }"


@pytest.mark.parametrize(("document", "field", "column"), [(CLAIM, "claimNextTask", 12), (USERS, "users", 9)],
                         ids=["claimNextTask", "users"])
async def test_a_user_is_forbidden_not_unauthenticated_after_an_anonymous_request(
    api: Api, document: str, field: str, column: int
) -> None:
    # given
    user = await api.sign_up("ada@example.com")
    anonymous = await api.post(document)

    # when
    body = await api.post(document, token=user)

    # then
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"] == [{
        "message": "only the analysis pipeline (WORKER) or an ADMIN can do this" if field == "claimNextTask"
        else "only an ADMIN can do this",
        "locations": [{"line": 1, "column": column}],
        "path": [field],
        "extensions": {"code": "FORBIDDEN", "requestId": ANY},
    }]


@strawberry.type
class Account:
    email: str
    # Permissions and no resolver: Strawberry reads the attribute after the check.
    api_key: str | None = strawberry.field(permission_classes=[IsAdmin])


@strawberry.type
class AccountQuery:
    @strawberry.field
    def account(self) -> Account:
        return Account(email="ada@example.com", api_key="secret")


def _schema(compiled: bool) -> strawberry.Schema:
    extensions: list[Any] = [ErrorCodes]
    if compiled:
        extensions.append(lambda: CompiledExecution(PlanCache(1024 * 1024, Loaders.kind)))
    return strawberry.Schema(query=AccountQuery, extensions=extensions)


def _context(role: Role) -> Context:
    # Nothing in this schema touches the database, the broker or the loaders.
    return Context(request=None, response=None, settings=Settings(_env_file=None), database=None,  # type: ignore[arg-type]
                   throttle=None, broker=None, loaders=None,  # type: ignore[arg-type]
                   viewer=Viewer(uuid.uuid4(), role))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "graphql-core"])
async def test_a_field_with_permissions_and_no_resolver_is_refused_to_the_wrong_viewer(compiled: bool) -> None:
    # given
    schema = _schema(compiled)
    document = "{ account { email apiKey } }"

    # when
    refused = await schema.execute(document, context_value=_context(Role.USER))
    allowed = await schema.execute(document, context_value=_context(Role.ADMIN))

    # then
    assert refused.data == {"account": {"email": "ada@example.com", "apiKey": None}}
    assert [error.formatted for error in refused.errors or []] == [{
        "message": "only an ADMIN can do this",
        "locations": [{"line": 1, "column": 19}],
        "path": ["account", "apiKey"],
        "extensions": {"code": "FORBIDDEN"},
    }]
    assert allowed.data == {"account": {"email": "ada@example.com", "apiKey": "secret"}}
    assert allowed.errors is None
