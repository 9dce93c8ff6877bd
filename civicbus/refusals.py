"""Why a command on a ticket is refused (拒绝原因): the codes of the command contract, with what each says."""

from __future__ import annotations

from enum import StrEnum


class RefusalCode(StrEnum):
    ticket_not_found = "ticket_not_found"
    wrong_state = "wrong_state"
    not_allowed = "not_allowed"
    deadline_passed = "deadline_passed"
    invalid_extension = "invalid_extension"
    extension_pending = "extension_pending"
    no_pending_extension = "no_pending_extension"
    missing_field = "missing_field"
    unknown_unit = "unknown_unit"
    same_unit = "same_unit"


REFUSAL_TEXTS: dict[RefusalCode, tuple[str, str]] = {
    RefusalCode.ticket_not_found: ("工单不存在", "no such ticket"),
    RefusalCode.wrong_state: ("工单当前状态不允许此操作", "the ticket's state does not allow this"),
    RefusalCode.not_allowed: ("无权对该工单执行此操作", "this actor may not do this to the ticket"),
    RefusalCode.deadline_passed: ("已超过办结时限，不能申请延期", "the resolve deadline has passed"),
    RefusalCode.invalid_extension: ("延期时间须晚于现办结时限", "the extension must end after the current deadline"),
    RefusalCode.extension_pending: ("已有待审批的延期申请", "an extension request is already pending"),
    RefusalCode.no_pending_extension: ("没有待审批的延期申请", "there is no pending extension request"),
    RefusalCode.missing_field: ("缺少必填内容", "a required field is missing"),
    RefusalCode.unknown_unit: ("单位不存在", "unknown unit"),
    RefusalCode.same_unit: ("改派单位与原主办单位相同", "the new unit is the current lead unit"),
}
"""What each refusal says, in Chinese for staff and in English for integrators (also in the OpenAPI document)."""
