"""Cross-file references (跨文件引用): a name in one configuration file that must be declared in a shared one — a
unit or leader of district.yaml named by a route, a deadline policy of deadlines.yaml, a category of categories.yaml
named by an escalation rule or the Open311 catalogue.

A service's loader owns its file's schema, but what the file names in the shared files is checked here, so a
service refusing to start, a reload refused and ``civicbus config check`` word the same mistake alike: the file, the
entry, and the name that is not declared where it must be.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from civicbus.district import District, config_error


def require_unit(district: District, path: Path, entry: str, unit_id: str) -> None:
    if unit_id not in district.units:
        raise config_error(path, entry, f"unit {unit_id!r} is not declared in district.yaml")


def require_leader(district: District, path: Path, entry: str, leader_id: str) -> None:
    if leader_id not in district.leaders:
        raise config_error(path, entry, f"leader {leader_id!r} is not declared in district.yaml")


def require_deadline_policy(district: District, path: Path, entry: str, policy: str) -> None:
    if policy not in district.deadlines.policies:
        raise config_error(path, entry, f"deadline policy {policy!r} is not in deadlines.yaml")


def require_category(district: District, path: Path, entry: str, code: str) -> None:
    if code not in district.category_by_code:
        raise config_error(path, entry, f"{code!r} is not a category of categories.yaml")


def require_upstream_codes(district: District, path: Path, entry: str, codes: Iterable[str]) -> None:
    """Codes the 12345 platform sends must each be some category's ``upstream_codes``, or the complaint would be
    classified by its text alone."""
    known = {code for category, _ in district.iter_categories() for code in category.upstream_codes}
    unknown = sorted(set(codes) - known)
    if unknown:
        raise config_error(
            path, entry, f"{', '.join(unknown)} are not upstream_codes of any category in categories.yaml")
