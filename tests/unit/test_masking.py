from civicbus.logs import mask_personal_data


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
