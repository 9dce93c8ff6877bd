"""The one masking policy for personal data (个人信息保护法): what counts as a citizen's phone number, ID number,
e-mail or name, and how each is shown to those who may not see it whole.

Every way data leaves civicbus applies it — logs (structlog and standard-library logging alike, see
``civicbus/logs.py``), robot, e-mail and SMS messages, API reads for roles that may not see personal data, exports,
Open311 and the DLQ tooling — so one written form it knows is known everywhere, and one it misses is missed
everywhere: add it here.

Numbers are found in the forms people write them: ``13800138000``, ``138 0013 8000``, ``138-0013-8000``,
``+86 138 0013 8000``, ``+8613800138000``, full-width digits (``１３８…``); landlines with their area code; 15- and
18-digit resident ID numbers (身份证号). A number glued to a Latin letter or digit is part of an identifier, not
personal data: a work-order number such as SF202611250571234567 (date + hex digest, all digits about once in a
hundred) must stay readable. Names cannot be told from other words, so they are masked where a field or a label
says a name is: the fields in :data:`NAME_FIELDS` (also when written as ``caller_name=…`` or ``"caller_name": "…"``
in a log line or a dead letter), after labels such as 联系人 or 姓名, and wherever a name the caller gave recurs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Fields that hold a person's name: complaint events, Open311 forms, upstream work orders once mapped.
NAME_FIELDS = frozenset({"caller_name", "first_name", "last_name", "contact_name"})

_D = "[0-9０-９]"
_SEP = "[ \u3000\\-－]?"  # a space, an ideographic space or a hyphen, half- or full-width
_GLUED = "0-9A-Za-z０-９Ａ-Ｚａ-ｚ"
_EDGE_BEFORE, _EDGE_AFTER = f"(?<![{_GLUED}])", f"(?![{_GLUED}])"
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")

_ID_NUMBER_18 = re.compile(f"{_EDGE_BEFORE}({_D}{{6}}){_D}{{8}}({_D}{{3}}[0-9０-９XxＸｘ]){_EDGE_AFTER}")
# First-generation IDs: region, YYMMDD, sequence — the date is checked, as other 15-digit numbers (a device's IMEI)
# are no one's ID.
_ID_NUMBER_15 = re.compile(f"{_EDGE_BEFORE}({_D}{{6}})({_D}{{5}})({_D}{{4}}){_EDGE_AFTER}")
_MOBILE = re.compile(
    f"{_EDGE_BEFORE}((?:(?:\\+|＋|00)\\s?)?[(（]?(?:86|８６)[)）]?{_SEP})?"  # country code, if written
    f"([1１][3-9３-９]{_D}){_SEP}({_D}{{4}}){_SEP}({_D}{{4}}){_EDGE_AFTER}"
)
_LANDLINE = re.compile(
    f"{_EDGE_BEFORE}((?:[(（][0０]{_D}{{2,3}}[)）]|[0０]{_D}{{2,3}}){_SEP})({_D}{{3,4}}){_SEP}({_D}{{4}}){_EDGE_AFTER}"
)
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9])[A-Za-z0-9._%+-]*(@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# A name field written out: caller_name=张三, "caller_name": "张三", 'first_name': 'John'.
_NAME_FIELD = re.compile(
    "([\"']?(?:" + "|".join(sorted(NAME_FIELDS)) + ")[\"']?\\s*[:=]\\s*[\"']?)([^\"'\\s,;&}]+)"
)
# A name after a label (two or three characters, the usual length of a name): 联系人张三, 姓名：李四, 来电人：王五 —
# 来电人 and the like only with a colon, as 来电人称/投诉人反映 begin what they said, not a name.
_LABELLED_NAME = re.compile(
    "((?:(?:姓名|联系人)[:：]?|(?:来电人|投诉人|反映人|举报人|报告人)[:：])\\s*)([\u4e00-\u9fff]{2,3})"
)


def mask_name(name: str) -> str:
    """``张三`` → ``张*``, ``欧阳娜娜`` → ``欧***``: the surname, or the first letter, stays."""
    name = name.strip()
    return name[:1] + "*" * (len(name) - 1) if len(name) > 1 else "*" * len(name)


def _id_15(found: re.Match[str]) -> str:
    date = found.group(2).translate(_FULL_WIDTH_DIGITS)[2:] + found.group(3).translate(_FULL_WIDTH_DIGITS)[0]
    month, day = int(date[:2]), int(date[2:])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return found.group()
    return f"{found.group(1)}*****{found.group(3)}"


def mask_personal_data(text: str, names: Iterable[str] = ()) -> str:
    """``13800001234`` → ``138****1234`` in every written form; ID numbers keep their region and last four
    characters, e-mails their first letter and domain, names their surname. ``names`` are names known to be in the
    text (the caller's own), masked wherever they occur."""
    for name in sorted({name.strip() for name in names if len(name.strip()) > 1}, key=len, reverse=True):
        text = text.replace(name, mask_name(name))
    text = _ID_NUMBER_18.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    text = _ID_NUMBER_15.sub(_id_15, text)
    text = _MOBILE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)
    text = _LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}", text)
    text = _NAME_FIELD.sub(lambda m: m.group(1) + mask_name(m.group(2)), text)
    return _LABELLED_NAME.sub(lambda m: m.group(1) + mask_name(m.group(2)), text)


def mask_url(url: str) -> str:
    """A URL with personal data masked in it, its query values read decoded (``phone=%2B8613800138000``)."""
    parts = urlsplit(url)
    query = urlencode([(key, mask_personal_data(value)) for key, value in parse_qsl(parts.query, True)], safe="*")
    return urlunsplit(parts._replace(path=mask_personal_data(parts.path), query=query,
                                     fragment=mask_personal_data(parts.fragment)))


def mask_record(value: Any, names: Iterable[str] = ()) -> Any:
    """A document (dicts, lists, strings) with personal data masked in every string and every name field."""
    if isinstance(value, str):
        return mask_personal_data(value, names)
    if isinstance(value, dict):
        return {key: mask_name(item) if key in NAME_FIELDS and isinstance(item, str) else mask_record(item, names)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_record(item, names) for item in value]
    return value
