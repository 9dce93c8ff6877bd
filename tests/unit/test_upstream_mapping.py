"""Upstream work orders mapped through configuration: the 12345 sample file, a second platform that is only a
file, and the start-up errors that name the file and the problem."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from civicbus.district import DistrictConfigError
from civicbus.events import ComplaintReceived, WorkOrderSubmission
from civicbus.settings import DEFAULT_CONFIG_DIR
from services.intake.admission import Admission, Inadmissible
from services.intake.upstream import load_mappings

SECOND_PLATFORM = """
version: 1
platform: citygrid
name: 市域社会治理平台
source: citygrid
fields:
  external_id: {path: event.no, required: true}
  content: {path: event.desc, required: true}
  upstream_category: {path: event.type, map: types}
  caller_phone: {path: reporter.mobile}
  due_at: {path: event.limit, formats: ["%Y/%m/%d %H:%M"]}
value_maps:
  types:
    values: {"GRID-WAGE": "0401", "GRID-DUST": "0303"}
    unmapped: refuse
"""

ORDER_12345 = {
    "gdbh": "ZJ12345-20261125-000317",
    "lyqd": "01",
    "ldrxm": "张先生",
    "ldhm": "13912345678",
    "sfzh": "330102199001011234",
    "sxfl": {"dm": "0401", "mc": "欠薪"},
    "fsdz": "南塘老街18号",
    "sqnr": "装修工地老板拖欠两个月工资",
    "blsx": "2026-11-27 18:00:00",
    "jjcd": "一般",
}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder, ignore=shutil.ignore_patterns("training", "models"))
    return folder


def test_a_12345_work_order_becomes_a_complaint_by_the_sample_mapping(district):
    admission = Admission(load_mappings(DEFAULT_CONFIG_DIR, district))
    event = admission.event(WorkOrderSubmission(platform="hotline12345", order=ORDER_12345), "12345-platform")
    assert isinstance(event, ComplaintReceived) and event.source == "12345"
    data = event.data
    assert (data.external_id, data.channel, data.upstream_category) == ("ZJ12345-20261125-000317", "12345电话", "0401")
    assert (data.caller_name, data.caller_phone, data.address) == ("张先生", "13912345678", "南塘老街18号")
    assert data.due_at == datetime(2026, 11, 27, 18, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert data.labels == {"platform": "hotline12345", "hotline_urgency": "一般"}
    assert "330102199001011234" not in event.encode().decode(), "the ID number is not mapped, so never published"
    again = admission.event(WorkOrderSubmission(platform="hotline12345", order=ORDER_12345), "kafka")
    assert again.event_id == event.event_id, "the work-order number is the identity, whoever forwards it"


def test_a_second_platform_is_only_a_configuration_file(config_dir, district):
    (config_dir / "upstream" / "citygrid.yaml").write_text(SECOND_PLATFORM, encoding="utf-8")
    admission = Admission(load_mappings(config_dir, district))
    order = {"event": {"no": "G-77", "desc": "工地扬尘", "type": "GRID-DUST", "limit": "2026/11/30 17:30"},
             "reporter": {"mobile": "13800001111"}}
    data = admission.event(WorkOrderSubmission(platform="citygrid", order=order), "grid").data
    assert (data.external_id, data.upstream_category, data.caller_phone, data.channel) == (
        "G-77", "0303", "13800001111", "citygrid")
    assert data.due_at.isoformat() == "2026-11-30T17:30:00+08:00"
    with pytest.raises(Inadmissible) as refused:
        admission.event(WorkOrderSubmission(platform="citygrid", order={"event": {"type": "NEW", "limit": "soon"}}), "g")
    problems = " | ".join(refused.value.problems)
    assert "event.no" in problems and "event.desc" in problems and "'NEW'" in problems and "'soon'" in problems
    with pytest.raises(Inadmissible, match="未配置的上游平台"):
        admission.event(WorkOrderSubmission(platform="elsewhere", order={}), "g")


@pytest.mark.parametrize(("change", "message"), [
    (("map: types", "map: kinds"), "value map 'kinds' is not declared"),
    (('"GRID-DUST": "0303"', '"GRID-DUST": "7777"'), "7777 are not upstream_codes"),
    (("{path: event.no, required: true}", "{path: 'event..no', required: true}"), "not a valid JMESPath"),
    (("{path: event.desc, required: true}", "{path: event.desc}"), "fields.content must be mapped and required"),
    (("version: 1", "version: 2"), "version 2 is not supported"),
])
def test_a_broken_mapping_stops_the_start_naming_file_and_problem(config_dir, district, change, message):
    path = config_dir / "upstream" / "citygrid.yaml"
    path.write_text(SECOND_PLATFORM.replace(*change), encoding="utf-8")
    with pytest.raises(DistrictConfigError, match=message) as error:
        load_mappings(config_dir, district)
    assert str(path) in str(error.value)
