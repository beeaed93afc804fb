"""The DataLoaders of one request: built in get_context, never shared between requests."""

from collections.abc import Callable
from typing import Generic, TypeVar

from db.access import Viewer
from db.engine import Database
from graph.analyses.loaders import (
    AnalysisByIdLoader,
    AnalysisByTaskIdLoader,
    FindingByIdLoader,
    FindingsByAnalysisIdLoader,
    SourceByIdLoader,
    SourcesByFindingIdLoader,
)
from graph.engine.selection import Selection
from graph.engine.visible import Visible
from graph.tasks.loaders import (
    ArtifactByIdLoader,
    ArtifactsByTaskIdLoader,
    EventPageByTaskLoader,
    TaskByIdLoader,
    TaskEventByIdLoader,
)
from graph.users.loaders import UserByIdLoader

L = TypeVar("L")


class _OnFirstUse(Generic[L]):
    """A loader built when a resolver first asks for it: a request reads through a few of
    the dozen, and a live subscription takes a fresh set before every delivery."""

    def __init__(self, kind: Callable[[Database, Viewer, Selection, Visible], L]) -> None:
        self.kind = kind

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, loaders: "Loaders", owner: type) -> L:
        loader = self.kind(loaders.database, loaders.viewer, loaders.selection, loaders.visible)
        # Kept on the instance, which later reads find before this descriptor.
        loaders.__dict__[self.name] = loader
        return loader


class Loaders:
    user_by_id = _OnFirstUse(UserByIdLoader)
    task_by_id = _OnFirstUse(TaskByIdLoader)
    task_event_by_id = _OnFirstUse(TaskEventByIdLoader)
    event_page_by_task = _OnFirstUse(EventPageByTaskLoader)
    artifacts_by_task_id = _OnFirstUse(ArtifactsByTaskIdLoader)
    artifact_by_id = _OnFirstUse(ArtifactByIdLoader)
    analysis_by_id = _OnFirstUse(AnalysisByIdLoader)
    analysis_by_task_id = _OnFirstUse(AnalysisByTaskIdLoader)
    findings_by_analysis_id = _OnFirstUse(FindingsByAnalysisIdLoader)
    finding_by_id = _OnFirstUse(FindingByIdLoader)
    sources_by_finding_id = _OnFirstUse(SourcesByFindingIdLoader)
    source_by_id = _OnFirstUse(SourceByIdLoader)

    @classmethod
    def kind(cls, name: str) -> Callable[[Database, Viewer, Selection, Visible], object]:
        """The class of the loader called `name`, known before any request builds one."""
        entry = cls.__dict__.get(name)
        if not isinstance(entry, _OnFirstUse):
            raise KeyError(name)
        return entry.kind

    def __init__(self, database: Database, viewer: Viewer) -> None:
        self.database = database
        self.viewer = viewer
        # Filled in once the document is parsed (graph/engine/selection.py).
        self.selection = Selection()
        self.visible = Visible()

    def fresh(self, database: Database, viewer: Viewer) -> "Loaders":
        """An empty set of the same loaders, for a live subscription's next delivery."""
        return Loaders(database, viewer)

    def by_type(self, type_name: str) -> object | None:
        """The by-id loader behind `node(id)` for a Node type name."""
        return {
            "User": self.user_by_id,
            "Task": self.task_by_id,
            "TaskEvent": self.task_event_by_id,
            "Artifact": self.artifact_by_id,
            "Analysis": self.analysis_by_id,
            "Finding": self.finding_by_id,
            "SourceReference": self.source_by_id,
        }.get(type_name)
