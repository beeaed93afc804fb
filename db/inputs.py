"""Validated shapes of what the pipeline records; ranges match the database's CHECKs."""

import uuid
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from db.enums import Severity, Verdict
from db.errors import InvalidInput

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_FINDINGS = 10_000
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ClientInput(_Input):
    """A shape clients send as JSON (recordAnalysis's findings): its fields by their camelCase names, or by
    their own."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


class SourceInput(_ClientInput):
    page_number: int | None = Field(default=None, ge=1, le=2**31 - 1)
    section: ShortText | None = None
    snippet: str | None = Field(default=None, max_length=10_000)


class FindingInput(_ClientInput):
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
    findings: list[FindingInput] = Field(default_factory=list, max_length=MAX_FINDINGS)


class ArtifactInput(_Input):
    kind: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    label: ShortText | None = None


# Findings checked per call: a call holds the interpreter throughout, so this bounds how long a thread that
# checks thousands of findings keeps the event loop waiting (a few milliseconds).
FINDINGS_PER_CHECK = 100
_FINDINGS = TypeAdapter(list[FindingInput])


def validate_input(model: type[ModelT], data: ModelT | dict[str, Any]) -> ModelT:
    """Check raw input against its model, reporting every problem as one clear InvalidInput."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput("; ".join(_problems(error))) from None


def validate_analysis(data: AnalysisInput | dict[str, Any]) -> AnalysisInput:
    """validate_input for an analysis, its findings checked a few at a time (see FINDINGS_PER_CHECK)."""
    findings = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(findings, list) or len(findings) <= FINDINGS_PER_CHECK:
        return validate_input(AnalysisInput, data)
    assert isinstance(data, dict)
    problems: list[str] = []
    analysis = None
    try:
        analysis = AnalysisInput.model_validate({**data, "findings": []})
    except ValidationError as error:
        problems.extend(_problems(error))
    if len(findings) > MAX_FINDINGS:
        raise InvalidInput(f"findings: List should have at most {MAX_FINDINGS} items, not {len(findings)}")
    checked: list[FindingInput] = []
    for start in range(0, len(findings), FINDINGS_PER_CHECK):
        try:
            checked.extend(_FINDINGS.validate_python(findings[start:start + FINDINGS_PER_CHECK]))
        except ValidationError as error:
            problems.extend(_problems(error, ("findings",), start))
    if problems or analysis is None:
        raise InvalidInput("; ".join(problems))
    return analysis.model_copy(update={"findings": checked})


def _problems(error: ValidationError, prefix: tuple[str, ...] = (), offset: int = 0) -> list[str]:
    problems = []
    for problem in error.errors():
        location = list(problem["loc"])
        if prefix and location and isinstance(location[0], int):
            location[0] += offset
        where = ".".join(str(part) for part in (*prefix, *location))
        problems.append(f"{where or 'input'}: {problem['msg']}")
    return problems
