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
        self.user_by_id = UserByIdLoader(database, viewer)
        self.task_by_id = TaskByIdLoader(database, viewer)
        self.task_event_by_id = TaskEventByIdLoader(database, viewer)
        self.event_page_by_task = EventPageByTaskLoader(database, viewer)
        self.artifacts_by_task_id = ArtifactsByTaskIdLoader(database, viewer)
        self.artifact_by_id = ArtifactByIdLoader(database, viewer)
        self.analysis_by_id = AnalysisByIdLoader(database, viewer)
        self.analysis_by_task_id = AnalysisByTaskIdLoader(database, viewer)
        self.findings_by_analysis_id = FindingsByAnalysisIdLoader(database, viewer)
        self.finding_by_id = FindingByIdLoader(database, viewer)
        self.sources_by_finding_id = SourcesByFindingIdLoader(database, viewer)
        self.source_by_id = SourceByIdLoader(database, viewer)

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
