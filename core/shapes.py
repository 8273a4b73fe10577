"""The shapes of what the API answers: TypedDicts that serialisers return (so mypy checks
each one builds what it promises), that `/openapi.json` publishes, and that the tests check
every answer against. `closed` makes a shape refuse keys it does not name, in the document
(`additionalProperties: false`) and in those checks, so a field added without its shape
fails a test instead of slipping out undocumented."""

from __future__ import annotations

from typing import NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

closed = with_config(ConfigDict(extra="forbid"))

__all__ = ["NotRequired", "TypedDict", "closed"]
