"""Validated shapes of what the pipeline records; ranges match the database's CHECKs."""

import uuid
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from db.enums import Severity, Verdict
from db.errors import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceInput(_Input):
    page_number: int | None = Field(default=None, ge=1, le=2**31 - 1)
    section: ShortText | None = None
    snippet: str | None = Field(default=None, max_length=10_000)


class FindingInput(_Input):
    severity: Severity
    rule_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    category: ShortText | None = None
    message: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    evidence: dict[str, Any] | None = None
    remediation: str | None = Field(default=None, max_length=10_000)
    confidence: float | None = Field(default=None, ge=0, le=1)
    artifact_id: uuid.UUID | None = None
    sources: list[SourceInput] = Field(default_factory=list, max_length=1000)


class AnalysisInput(_Input):
    verdict: Verdict
    equipment_type: ShortText | None = None
    test_type: ShortText | None = None
    equipment_tag: ShortText | None = None
    compliance_score: float | None = Field(default=None, ge=0, le=100)
    confidence_score: float | None = Field(default=None, ge=0, le=1)
    summary: str | None = Field(default=None, max_length=100_000)
    extraction_result: dict[str, Any] | None = None
    validation_result: dict[str, Any] | None = None
    findings: list[FindingInput] = Field(default_factory=list, max_length=10_000)


class ArtifactInput(_Input):
    kind: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    label: ShortText | None = None


def validate_input(model: type[ModelT], data: ModelT | dict[str, Any]) -> ModelT:
    """Check raw input against its model, reporting every problem as one clear InvalidInput."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'input'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise InvalidInput(problems) from None
