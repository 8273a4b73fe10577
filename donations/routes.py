"""The one route table of the donations package (its modules add to it; the app mounts it)."""

from __future__ import annotations

from core.http import Api

api = Api()
