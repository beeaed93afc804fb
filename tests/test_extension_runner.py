"""The lean extension runner (graph/engine/extension_runner.py) calls hooks as Strawberry's own runner does:
the same order in and out, the same exceptions seen by each hook, the same results. One difference, on
purpose: when a hook fails on its way in, the hooks of that phase already entered are left with its error
(Strawberry leaves them suspended until they are garbage collected)."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from graph.engine.extension_runner import ExtensionsRunner


class Failure(Exception):
    pass


def recording(name: str, log: list[str], fail_in: str | None = None) -> type[SchemaExtension]:
    """An extension with a hook of each kind, writing what it sees to `log`; it raises in the phase `fail_in`."""

    def seen(phase: str) -> None:
        log.append(f"{name} {phase} in")
        if phase == fail_in:
            raise Failure(f"{name} {phase}")

    class Recording(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            seen("operation")
            try:
                yield
            except BaseException as error:
                log.append(f"{name} operation saw {error!r}")
                raise
            log.append(f"{name} operation out")

        async def on_parse(self) -> AsyncIterator[None]:
            seen("parse")
            yield
            log.append(f"{name} parse out")

        async def on_validate(self) -> None:  # type: ignore[override]
            seen("validate")

        def on_execute(self) -> Iterator[None]:
            seen("execute")
            try:
                yield
            finally:
                log.append(f"{name} execute out")

        def get_results(self) -> dict[str, Any]:
            return {name: len(log)}

    return Recording


@strawberry.type
class Query:
    @strawberry.field
    def ok(self) -> int:
        return 1

    @strawberry.field
    def broken(self) -> int:
        raise ValueError("resolver failed")


class LeanSchema(strawberry.Schema):
    def create_extensions_runner(self, execution_context: Any, extensions: list[SchemaExtension]) -> Any:
        return ExtensionsRunner(execution_context=execution_context, extensions=extensions)


async def run(schema_class: type[strawberry.Schema], query: str, fail_in: str | None) -> tuple[list[str], Any]:
    log: list[str] = []
    schema = schema_class(Query, extensions=[recording("first", log), recording("second", log, fail_in)])
    try:
        result = await schema.execute(query)
    except Exception as error:  # noqa: BLE001 - what escapes is part of what is compared
        return log, repr(error)
    errors = [error.message for error in result.errors or ()]
    return log, (result.data, errors, result.extensions)


QUERIES = ["{ ok }", "{ broken }", "{ nope }", "{"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("fail_in", [None, "parse", "validate"])
async def test_hooks_run_as_strawberrys_own_runner_runs_them(query: str, fail_in: str | None) -> None:
    assert await run(LeanSchema, query, fail_in) == await run(strawberry.Schema, query, fail_in)


@pytest.mark.parametrize("phase", ["operation", "execute"])
async def test_a_hook_that_fails_on_its_way_in_leaves_those_entered_before_it_with_its_error(phase: str) -> None:
    log, outcome = await run(LeanSchema, "{ ok }", phase)
    strawberrys_log, strawberrys_outcome = await run(strawberry.Schema, "{ ok }", phase)

    failed_at = log.index(f"second {phase} in") + 1
    left = f"first {phase} saw Failure('second {phase}')" if phase == "operation" else "first execute out"
    assert log == [*strawberrys_log[:failed_at], left, *strawberrys_log[failed_at:]]
    assert outcome[:2] == strawberrys_outcome[:2]


def run_synchronously(schema_class: type[strawberry.Schema], query: str) -> tuple[list[str], Any, list[str]]:
    log: list[str] = []

    class Synchronous(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            log.append("operation in")
            yield
            log.append("operation out")

        def on_execute(self) -> Iterator[None]:
            log.append("execute in")
            try:
                yield
            finally:
                log.append("execute out")

    result = schema_class(Query, extensions=[Synchronous]).execute_sync(query)
    return log, result.data, [error.message for error in result.errors or ()]


@pytest.mark.parametrize("query", QUERIES)
def test_hooks_run_synchronously_as_strawberrys_own_runner_runs_them(query: str) -> None:
    assert run_synchronously(LeanSchema, query) == run_synchronously(strawberry.Schema, query)
