"""Both languages everywhere: the pages' dictionary (`static/js/i18n.js`) says every string in
Indonesian and in English, with the same placeholders, and every error `code` the server can
answer has a sentence in each (`err_<code>`), so no page shows a server's English message."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
SOURCES = ("core", "commerce", "donations", "live", "panen")
# How the code names an error: bad_request("x", …), conflict("x", …), FrameError("x", …),
# ApiError(409, "x", …), and the few answered as a bare {"code": "x"}.
RAISED = re.compile(
    r'(?:bad_request|conflict|FrameError)\(\s*"([a-z_]+)"'
    r'|ApiError\(\s*\d+\s*,\s*"([a-z_]+)"'
    r'|"code":\s*"([a-z_]+)"'
)
KEY = re.compile(r"(?:^|[{,\s])([a-z][a-z0-9_]*):\s*\"((?:[^\"\\]|\\.)*)\"", re.M)


def dictionaries() -> dict[str, dict[str, str]]:
    js = (ROOT / "static" / "js" / "i18n.js").read_text()
    body = js[js.index("const DICT = {") : js.index("\n};", js.index("const DICT = {"))]
    id_part, _, en_part = body.partition("\n  en: {")
    return {lang: dict(KEY.findall(part)) for lang, part in (("id", id_part), ("en", en_part))}


def raised_codes() -> set[str]:
    codes: set[str] = set()
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            for groups in RAISED.findall(path.read_text()):
                codes.update(g for g in groups if g)
    return codes


def test_every_string_is_in_indonesian_and_english_with_the_same_placeholders() -> None:
    d = dictionaries()
    assert len(d["id"]) > 300
    assert sorted(set(d["id"]) ^ set(d["en"])) == []
    for key, text in d["id"].items():
        placeholders = set(re.findall(r"\{(\w+)\}", text))
        assert placeholders == set(re.findall(r"\{(\w+)\}", d["en"][key])), key


def test_every_error_code_the_server_answers_has_a_sentence_in_both_languages() -> None:
    codes = raised_codes()
    # The scan sees codes of every kind of raise.
    assert {"sold_out", "slow_mode", "invalid_image", "address_required"} <= codes
    d = dictionaries()
    for lang in ("id", "en"):
        missing = sorted(c for c in codes if f"err_{c}" not in d[lang])
        assert missing == [], f"{lang}: no sentence for {missing}"
