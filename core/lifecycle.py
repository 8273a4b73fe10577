"""A state machine as data: the states of a money object and the moves allowed between them.

Each money object (an order, a payment, a gift) has one lifecycle module that builds a
`Lifecycle` from its status enum and is the only code that writes that object's status.
A move the table does not allow is a 409 with a stable code, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from core.errors import ApiError

S = TypeVar("S", bound=StrEnum)


class Lifecycle(Generic[S]):
    def __init__(self, name: str, moves: Mapping[S, Iterable[S]]) -> None:
        self.name = name
        self.moves: dict[S, frozenset[S]] = {state: frozenset(to) for state, to in moves.items()}
        self.states: tuple[S, ...] = tuple(self.moves)
        unknown = {t for to in self.moves.values() for t in to} - set(self.moves)
        if unknown:
            raise ValueError(f"{name}: moves to states without a row: {sorted(unknown)}")
        self.final = frozenset(s for s, to in self.moves.items() if not to)

    def allows(self, current: str, to: S) -> bool:
        return to in self.moves.get(self._state(current), frozenset())

    def check(self, current: str, to: S) -> None:
        """Refuse a move the table does not allow: 409 `invalid_transition`."""
        if not self.allows(current, to):
            raise ApiError(
                409,
                "invalid_transition",
                f"a {current} {self.name} cannot become {to}",
                {"status": str(current), "to": str(to)},
            )

    def sql_values(self) -> str:
        """`'a','b',…` for the table's CHECK constraint, so the database knows the same states."""
        return ",".join(f"'{s}'" for s in self.states)

    def _state(self, value: str) -> S:
        for state in self.states:
            if state == value:
                return state
        raise ValueError(f"{self.name}: unknown status {value!r}")
