"""The masking policy (civicbus/privacy.py) on each written form it knows, and every logging path applying it."""

import logging
from collections.abc import Iterator

import pytest
import structlog

from civicbus.dlq import Letter
from civicbus.events import DeadLetter
from civicbus.logs import configure_logging, get_logger
from civicbus.privacy import mask_name, mask_personal_data, mask_record, mask_url


def test_mobile_landline_and_id_numbers_are_masked():
    text = "来电人13800001234，座机0571-88881234，身份证330102199001011234，工单12345"
    masked = mask_personal_data(text)
    assert "13800001234" not in masked and "138****1234" in masked
    assert "0571-****1234" in masked
    assert "330102********1234" in masked
    assert "工单12345" in masked, "short numbers are not personal data"


def test_id_number_with_x_checksum():
    assert mask_personal_data("33010219900101123X") == "330102********123X"


def test_work_order_numbers_stay_readable_even_when_all_digits():
    text = "工单SF202611250571234567（电话13800001234）已派单；SF050036385449 已签收；tel:0571-88881234"
    masked = mask_personal_data(text)
    assert "SF202611250571234567" in masked and "SF050036385449" in masked
    assert "138****1234" in masked and "0571-****1234" in masked


@pytest.mark.parametrize("written, masked", [
    ("+86 138 0013 8000", "+86 138****8000"),
    ("+8613800138000", "+86138****8000"),
    ("0086 13800138000", "0086 138****8000"),
    ("(+86)138-0013-8000", "(+86)138****8000"),
    ("138-0013-8000", "138****8000"),
    ("138 0013 8000", "138****8000"),
    ("１３８００１３８０００", "１３８****８０００"),
    ("１３８－００１３－８０００", "１３８****８０００"),
])
def test_mobile_numbers_in_every_written_form(written: str, masked: str) -> None:
    assert mask_personal_data(f"联系电话{written}，谢谢") == f"联系电话{masked}，谢谢"


@pytest.mark.parametrize("written, masked", [
    ("0571-88881234", "0571-****1234"),
    ("0571 8888 1234", "0571 ****1234"),
    ("(0571)88881234", "(0571)****1234"),
    ("010-12345678", "010-****5678"),
    ("０５７１－８８８８１２３４", "０５７１－****１２３４"),
])
def test_landlines_with_area_code(written: str, masked: str) -> None:
    assert mask_personal_data(f"座机{written}") == f"座机{masked}"


def test_fifteen_digit_id_numbers_but_not_other_fifteen_digit_numbers() -> None:
    assert mask_personal_data("身份证330102900101123") == "身份证330102*****1123"
    assert mask_personal_data("身份证３３０１０２９００１０１１２３") == "身份证３３０１０２*****１１２３"
    assert mask_personal_data("烟感IMEI 860123456789012") == "烟感IMEI 860123456789012", "month 67: no one's ID"


def test_full_width_eighteen_digit_id_number() -> None:
    assert mask_personal_data("３３０１０２１９９００１０１１２３Ｘ") == "３３０１０２********１２３Ｘ"


def test_emails_keep_their_first_letter_and_domain() -> None:
    assert mask_personal_data("邮箱zhang.san+x@example.com.cn。") == "邮箱z***@example.com.cn。"


def test_names_in_name_fields_after_labels_and_where_the_caller_gave_them() -> None:
    assert mask_personal_data('{"caller_name": "张三", "title": "噪声"}') == '{"caller_name": "张*", "title": "噪声"}'
    assert mask_personal_data("caller_name=欧阳娜娜 first_name='John'") == "caller_name=欧*** first_name='J***'"
    assert mask_personal_data("联系人：李四，来电人：王小明") == "联系人：李*，来电人：王**"
    assert mask_personal_data("来电人称小区噪声扰民") == "来电人称小区噪声扰民", "no name after 来电人 without a colon"
    assert mask_personal_data("我是赵六，住3栋", names=["赵六"]) == "我是赵*，住3栋"
    assert mask_name("张三") == "张*"


def test_records_are_masked_by_field_and_in_every_string() -> None:
    record = {"caller_name": "张三", "items": [{"title": "联系13800138000"}], "count": 2}
    assert mask_record(record) == {"caller_name": "张*", "items": [{"title": "联系138****8000"}], "count": 2}


def test_urls_are_masked_in_their_decoded_query() -> None:
    masked = mask_url("https://img.example.com/a/13800138000.jpg?phone=%2B8613800138000&size=2")
    assert "13800138000" not in masked and "0013" not in masked
    assert masked == "https://img.example.com/a/138****8000.jpg?phone=%2B86138****8000&size=2"


@pytest.fixture
def configured_logging() -> Iterator[None]:
    """The services' logging for one test, then as it was (structlog would keep this test's captured stderr)."""
    saved, factory, handlers = structlog.get_config(), logging.getLogRecordFactory(), logging.getLogger().handlers[:]
    configure_logging("INFO")
    yield
    structlog.configure(**saved)
    logging.setLogRecordFactory(factory)
    logging.getLogger().handlers[:] = handlers


@pytest.mark.usefixtures("configured_logging")
def test_standard_library_logging_is_masked_message_arguments_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("uvicorn.error")
    logger.warning("body %s", {"content": "13800138000", "caller_name": "张三"})
    logger.warning('"%s %s HTTP/%s" %d', "GET", "/v1/tickets?q=+86 138 0013 8000", "1.1", 200)
    try:
        raise ValueError("input: 身份证330102199001011234 z.san@example.com")
    except ValueError:
        logger.exception("Exception in ASGI application")
    logged = caplog.text
    for raw in ("13800138000", "0013 8000", "张三", "199001011234", "z.san@"):
        assert raw not in logged
    assert "138****8000" in logged and "330102********1234" in logged and "z***@example.com" in logged


@pytest.mark.usefixtures("configured_logging")
def test_structlog_values_nested_and_objects_are_masked(capsys: pytest.CaptureFixture) -> None:
    get_logger("test").warning("refused", body={"caller_name": "张三", "phone": "138-0013-8000"},
                               error=ValueError("13800138000"))
    logged = capsys.readouterr().err
    assert "张三" not in logged and "0013" not in logged and "13800138000" not in logged


def test_dead_letters_are_shown_masked_names_included() -> None:
    value = '{"data": {"caller_name": "张三", "caller_phone": "+86 138 0013 8000", "content": "邮箱a.b@example.com"}}'
    letter = Letter(0, 7, DeadLetter(source="civicbus.triage", service="triage", error_kind="invalid", reason="bad",
                                     original_topic="civic.events", original_partition=1, original_offset=2,
                                     original_key="k", original_value=value))
    shown = letter.shown_value()
    assert "张三" not in shown and "0013" not in shown and "a.b@" not in shown
    assert '"caller_name": "张*"' in shown and "138****8000" in shown
