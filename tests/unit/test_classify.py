"""Classification of Chinese text by the sample keyword rules."""

from __future__ import annotations

import pytest

from services.triage.classify import Classifier


@pytest.fixture(scope="module")
def classifier(district) -> Classifier:
    return Classifier(district)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("老板拖欠我们农民工工资三个月了，讨薪无门", "labor.wage_arrears"),
        ("工地晚上施工扬尘很大，渣土车没有覆盖", "environment.dust"),
        ("田里有人焚烧秸秆，浓烟很大", "environment.straw"),
        ("楼道里电动车飞线充电，很危险", "property.flying_wire"),
        ("接到冒充客服的电话让我刷单返利，被骗了两万", "antifraud.report"),
        ("河道里发现大量蓝藻，水体发绿发臭", "environment.water"),
    ],
)
def test_keywords_pick_the_category(classifier, text, expected):
    result = classifier.classify(text)
    assert result.code == expected
    assert result.evidence.method == "keywords"
    assert result.evidence.keywords, "the evidence names the keywords found"
    assert 0 < result.evidence.confidence <= 1


def test_upstream_category_code_is_honoured_before_keywords(classifier, district):
    code = next(c for c in district.category_by_code.values() if c.upstream_codes and c.code.startswith("market"))
    result = classifier.classify("农民工工资被拖欠", upstream_code=code.upstream_codes[0])
    assert result.code == code.code
    assert result.evidence.method == "upstream_code"


def test_unknown_upstream_code_falls_back_to_keywords(classifier):
    assert classifier.classify("农民工工资被拖欠", upstream_code="9999").code == "labor.wage_arrears"


def test_alarm_type_decides_an_alarm(classifier):
    result = classifier.classify("设备告警", alarm_type="smoke")
    assert (result.code, result.evidence.method) == ("safety.fire", "alarm_type")


def test_exclusion_phrase_vetoes_a_category(classifier, district):
    fire = district.category_by_code["safety.fire"]
    assert fire.exclude, "the sample excludes drills from fire"
    drill = fire.exclude[0]
    assert classifier.classify(f"小区组织{drill}").code != "safety.fire"


def test_inspection_line_narrows_keywords_to_its_branch(classifier):
    result = classifier.classify("消防通道堵塞，灭火器过期", inspection_type="安全生产")
    assert result.code.startswith("safety.")


def test_inspection_without_keywords_gets_its_line_root(classifier):
    result = classifier.classify("现场检查一切正常", inspection_type="生态环保")
    assert (result.code, result.evidence.method) == ("environment", "inspection_type")


def test_text_with_no_keyword_falls_back_with_zero_confidence(classifier):
    result = classifier.classify("今天天气不错")
    assert (result.code, result.evidence.method, result.evidence.confidence) == ("other", "none", 0.0)


def test_mixed_text_has_lower_confidence_and_names_the_runner_up(classifier):
    result = classifier.classify("拖欠工资，还有工地扬尘")
    assert result.evidence.confidence < 1
    assert result.evidence.runner_up
