"""Every rule of how energy points are earned and kept, in one place.

Defaults below; an operator overrides any of them with one JSON object in
`PANEN_ENERGY_RULES` (read once into `Settings.energy_rules`), e.g.
`{"watch_max_minutes_per_session": 30, "points_ttl_s": 604800}`. An unknown name or a
value of the wrong type stops the process at start, not at the first viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

import orjson

from core.settings import Settings, SettingsError

DAY_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Rules:
    # Watching: one "minute" is `watch_minute_s` seconds of a live socket subscribed to a
    # room (tests shorten it); a user earns at most once a minute, whatever they open.
    watch_minute_s: int = 60
    watch_points_per_minute: int = 1
    watch_max_minutes_per_session: int = 60
    watch_max_minutes_per_day: int = 180
    # Accounts that may earn watch minutes from one device (device id or address) a minute.
    device_accounts_per_minute: int = 2
    # Likes: `likes_per_point` likes make a point, capped per room and per day.
    likes_per_point: int = 10
    like_max_points_per_session: int = 20
    like_max_points_per_day: int = 50
    # Purchases and donations: one point per this many minor units (Rp 1,000; 1.00 CNY).
    spend_minor_per_point: Any = None  # dict[currency, int]; see _SPEND
    donate_minor_per_point: Any = None
    purchase_max_points_per_day: int = 5_000
    donation_max_points_per_day: int = 5_000
    # Ant Forest's energy expires if not collected; ours if not redeemed in this long.
    points_ttl_s: int = 30 * DAY_S

    def spend_rate(self, currency: str) -> int:
        rates: dict[str, int] = self.spend_minor_per_point or _SPEND
        return rates.get(currency, 0)

    def donate_rate(self, currency: str) -> int:
        rates: dict[str, int] = self.donate_minor_per_point or _SPEND
        return rates.get(currency, 0)


_SPEND = {"IDR": 1_000, "JPY": 10, "CNY": 100, "USD": 10, "SGD": 10, "MYR": 50}


def parse(raw: str) -> Rules:
    if not raw.strip():
        return Rules()
    try:
        given = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SettingsError(f"PANEN_ENERGY_RULES is not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise SettingsError("PANEN_ENERGY_RULES must be a JSON object")
    known = {f.name for f in fields(Rules)}
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if name not in known:
            raise SettingsError(f"PANEN_ENERGY_RULES: unknown rule {name!r}")
        if name in ("spend_minor_per_point", "donate_minor_per_point"):
            ok = isinstance(value, dict) and all(
                isinstance(k, str) and type(v) is int and v > 0 for k, v in value.items()
            )
        else:
            ok = type(value) is int and value >= 0
        if not ok:
            raise SettingsError(f"PANEN_ENERGY_RULES: {name} has a bad value {value!r}")
        changes[name] = value
    rules = replace(Rules(), **changes)
    if rules.watch_minute_s < 1 or rules.likes_per_point < 1 or rules.points_ttl_s < 1:
        raise SettingsError(
            "PANEN_ENERGY_RULES: watch_minute_s, likes_per_point, points_ttl_s >= 1"
        )
    return rules


@lru_cache(maxsize=8)
def _cached(raw: str) -> Rules:
    return parse(raw)


def rules_of(settings: Settings) -> Rules:
    """The process's rules (parsed once per distinct setting)."""
    return _cached(settings.energy_rules)
