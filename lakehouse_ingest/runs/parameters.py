"""The flows' parameters, checked the way a person typed them (the Run form, ``prefect deployment run -p``, an
automation's template): blanks mean "the default", one name counts as a list of one, and anything else that does
not fit is refused with one line naming the parameter, what it takes and what it got (``ConfigError``).

The flows turn Prefect's own parameter validation off and call these first, so a bad value ends the run Failed
with that line as its state message, instead of Prefect's multi-line pydantic report.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, WithJsonSchema, field_validator

from lakehouse_ingest.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: str | None = None
    bronze: str | None = None
    silver: str | None = None

    @field_validator("catalog", "bronze", "silver", mode="before")
    @classmethod
    def _blank_is_default(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


def _names(value: Any) -> Any:
    """One name is a list of one; an empty list, or blanks, are none (the default)."""
    if isinstance(value, str):
        value = [value] if value.strip() else []
    if isinstance(value, list | tuple):
        value = [v.strip() if isinstance(v, str) else v for v in value]
        value = [v for v in value if v != ""]
        return value or None
    return value


class BronzeParameters(_Parameters):
    """``bronze-ingest``'s parameters."""

    sources: list[str] | None = None
    force: bool = False

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        return _names(value)


class RevalidateParameters(_Parameters):
    """``bronze-revalidate``'s parameters."""

    batches: list[str]

    @field_validator("batches", mode="before")
    @classmethod
    def _batches(cls, value: Any) -> Any:
        return _names(value) or []


class SilverParameters(_Parameters):
    """``silver-merge``'s parameters."""

    sources: list[str] | None = None
    manifests: list[str] | None = None

    @field_validator("sources", "manifests", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _names(value)


def checked(model: type[M], **values: Any) -> M:
    """``values`` as ``model``; every problem in one line (``ConfigError``)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"]) or "parameters"
            got = repr(error.get("input"))
            got = got if len(got) <= 80 else got[:77] + "..."
            problems.append(f"parameter {name!r}: {error['msg'].lower()} (got {got})")
        raise ConfigError("; ".join(problems)) from None


# How the flows declare their optional parameters, so that Prefect's Run form shows a plain text box (or list)
# left empty for the default, instead of a "str | None" switch set to None ("Property is type None").
Names = Annotated[list[str] | None, WithJsonSchema({"type": "array", "items": {"type": "string"}})]
Text = Annotated[str | None, WithJsonSchema({"type": "string"})]
