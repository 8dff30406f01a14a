"""The base of every config section: unknown keys are errors, assignments are validated too."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def changed_keys(ours: Section, default: Section) -> list[str]:
    """The keys of ``ours`` whose values differ from ``default``'s (what a user set in a section)."""
    return [k for k in type(ours).model_fields if getattr(ours, k) != getattr(default, k)]
