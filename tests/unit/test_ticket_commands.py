"""The command path's pure parts: the person a workbench key acts for (intake), the command routes' table, what the
timeline says of who acted and the decision triage announces (triage)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from fastapi import HTTPException

from civicbus.events import Action, Actor, TicketCommand
from services.intake.commands import COMMAND_ROUTES, ReturnBody, person_acting
from services.triage.commands import actor_text, decision_event


def test_a_workbench_key_acts_for_the_person_its_headers_name():
    actor = person_acting("zhangsan", quote("张三"), "unit", "laobao")
    assert actor == Actor(name="张三", role="unit", unit="laobao", account="zhangsan")
    assert person_acting("zhengxy", quote("郑秀英"), "leader", None).unit == ""


@pytest.mark.parametrize(("account", "name", "role", "unit", "named"), [
    (None, quote("张三"), "unit", "laobao", "X-Actor-Account"),
    ("张三", quote("张三"), "unit", "laobao", "X-Actor-Account"),
    ("zhangsan", None, "unit", "laobao", "X-Actor-Name"),
    ("zhangsan", "张三", "unit", "laobao", "X-Actor-Name"),  # not percent-encoded
    ("zhangsan", "%E5%BC", "unit", "laobao", "X-Actor-Name"),  # not UTF-8
    ("zhangsan", quote("   "), "unit", "laobao", "X-Actor-Name"),
    ("zhangsan", quote("张三"), "system", "laobao", "X-Actor-Role"),
    ("zhangsan", quote("张三"), None, "laobao", "X-Actor-Role"),
    ("zhangsan", quote("张三"), "unit", "", "X-Actor-Unit"),
    ("zhangsan", quote("张三"), "unit", "lao bao", "X-Actor-Unit"),
])
def test_a_person_missing_or_ill_named_is_refused_with_400(account, name, role, unit, named):
    with pytest.raises(HTTPException) as refused:
        person_acting(account, name, role, unit)
    assert refused.value.status_code == 400
    assert named in refused.value.detail and "操作人信息无效" in refused.value.detail


def test_the_timeline_names_the_person_and_their_unit_or_role(district):
    assert actor_text(Actor(name="张三", role="unit", unit="laobao", account="zhangsan"), district) == "张三（劳动保障所）"
    assert actor_text(Actor(name="郑秀英", role="leader", account="zhengxy"), district) == "郑秀英（领导）"
    assert actor_text(Actor(name="管理员甲", role="admin", unit="pingan", account="root"), district) == "管理员甲（管理员）"
    assert actor_text(Actor(name="劳动保障所 张三", role="unit", unit="laobao"), district) == "劳动保障所 张三", \
        "a key (no person signed in) is named as it is"


def test_every_command_route_sends_fields_the_command_has():
    assert len({route.path for route in COMMAND_ROUTES}) == len(COMMAND_ROUTES) == 10
    for route in COMMAND_ROUTES:
        for name in route.body.model_fields:
            assert route.renamed.get(name, name) in TicketCommand.model_fields, (route.path, name)
    returned = next(route for route in COMMAND_ROUTES if route.action is Action.return_)
    assert returned.command_fields(ReturnBody(reason="other", note="不属本单位")) == {
        "return_reason": "other", "note": "不属本单位"}


def test_triage_announces_a_decision_under_the_same_id_whenever_it_is_read_again():
    command = TicketCommand(source="test", ticket_id="SF20261123AB12CD34EF", action=Action.sign_for,
                            actor=Actor(name="张三", role="unit", unit="laobao"))
    record = {"status": "refused", "code": "wrong_state", "message": "工单当前状态不允许此操作",
              "message_en": "the ticket's state does not allow this", "decided_at": datetime(2026, 11, 23, tzinfo=UTC)}
    first, again = decision_event(command, record), decision_event(command, dict(record))
    assert first.event_id == again.event_id != command.event_id
    assert (first.command_id, first.partition_key, first.status, first.code) == (
        command.event_id, command.ticket_id, "refused", "wrong_state")
