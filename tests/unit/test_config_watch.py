import os

from civicbus.service import _config_stamp


def test_the_watch_sees_files_in_sub_folders_and_ignores_folders(tmp_path):
    (tmp_path / "district.yaml").write_text("version: 1\n")
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "classifier.joblib"
    model.write_bytes(b"v1")
    before = _config_stamp(tmp_path)
    assert [name for name, _, _ in before] == ["district.yaml", "models/classifier.joblib"]

    model.write_bytes(b"model v2")  # a retrained classifier
    os.utime(model, ns=(before[1][1] + 10**9, before[1][1] + 10**9))
    assert _config_stamp(tmp_path) != before
