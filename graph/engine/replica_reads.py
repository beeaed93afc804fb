"""The query operations of HTTP requests read the replica (db/replica.py); every other operation the primary."""

from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType


class QueriesReadTheReplica(SchemaExtension):
    """Wraps execution, before CompiledExecution runs a plan in its own hook."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        if execution.operation_type is OperationType.QUERY and context.may_read_replica:
            with context.database.reads_replica(context.replica_after):
                yield
        else:
            yield
