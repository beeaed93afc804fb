"""Tells the request's facts which operation ran, for whom, and the first error code it ended with."""

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

from graph.observability.facts import OK, current


class OperationFacts(SchemaExtension):
    """First in the schema's extensions, so it leaves last and sees the errors after ErrorCodes gave them codes."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        finally:
            # Also when a subscription is cancelled because its client went away.
            self._record()

    def _record(self) -> None:
        facts = current.get()
        if facts is None:
            return
        context = self.execution_context
        if context.graphql_document is not None:
            try:
                facts.operation_type = context.operation_type.value
            except RuntimeError:
                # No operation of that name in the document: nothing ran, and the name is only what was sent.
                pass
            else:
                facts.operation_name = context.operation_name
        viewer = getattr(context.context, "viewer", None)
        if viewer is not None:
            facts.viewer_id = viewer.user_id
        errors = getattr(context.result, "errors", None) or context.pre_execution_errors
        if errors:
            # The first failure stands, also over a WebSocket whose earlier operations went well.
            if facts.code in (None, OK):
                facts.code = str((errors[0].extensions or {}).get("code", "BAD_USER_INPUT"))
        elif facts.code is None:
            facts.code = OK
