"""The DataLoaders of one request: built in get_context, never shared between requests."""

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
from graph.selection import Selection
from graph.tasks.loaders import (
    ArtifactByIdLoader,
    ArtifactsByTaskIdLoader,
    EventPageByTaskLoader,
    TaskByIdLoader,
    TaskEventByIdLoader,
)
from graph.users.loaders import UserByIdLoader


class Loaders:
    def __init__(self, database: Database, viewer: Viewer) -> None:
        # Filled in once the document is parsed (graph/selection.py).
        self.selection = selection = Selection()
        self.user_by_id = UserByIdLoader(database, viewer, selection)
        self.task_by_id = TaskByIdLoader(database, viewer, selection)
        self.task_event_by_id = TaskEventByIdLoader(database, viewer, selection)
        self.event_page_by_task = EventPageByTaskLoader(database, viewer, selection)
        self.artifacts_by_task_id = ArtifactsByTaskIdLoader(database, viewer, selection)
        self.artifact_by_id = ArtifactByIdLoader(database, viewer, selection)
        self.analysis_by_id = AnalysisByIdLoader(database, viewer, selection)
        self.analysis_by_task_id = AnalysisByTaskIdLoader(database, viewer, selection)
        self.findings_by_analysis_id = FindingsByAnalysisIdLoader(database, viewer, selection)
        self.finding_by_id = FindingByIdLoader(database, viewer, selection)
        self.sources_by_finding_id = SourcesByFindingIdLoader(database, viewer, selection)
        self.source_by_id = SourceByIdLoader(database, viewer, selection)

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
