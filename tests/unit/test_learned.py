"""The learned classification layer: reading labelled tables, training, model files, and triage with a model."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
from openpyxl import Workbook
from structlog.testing import capture_logs
from typer.testing import CliRunner

from civicbus.district import District, DistrictConfigError
from civicbus.events import Complaint, ComplaintReceived
from services.triage.classify import Classifier
from services.triage.decide import TriageEngine
from services.triage.learned import (
    DEFAULT_MODEL_PATH,
    LabelledDataError,
    ModelFileError,
    TrainedModel,
    check_labels,
    read_labelled,
    train,
)
from services.triage.learned_cli import classifier_app
from services.triage.sample_corpus import configured_terms, generate, leaf_categories, write_sample_corpus

ROWS = [
    ("GD001", "小区物业不作为，电梯坏了一个月", "property.service"),
    ("GD002", "", "property.service"),  # no text: skipped
    ("GD003", "工地扬尘很大", ""),  # no label: skipped
    ("GD004", "工地扬尘很大，渣土车没有覆盖", "environment.dust"),
]


def _write_csv(path: Path, encoding: str, rows=ROWS, header=("工单编号", "内容", "类别")) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _tiny(pairs: list[tuple[str, str]], copies: int = 6) -> TrainedModel:
    """A model trained on purpose-made rows (each repeated with small variations)."""
    texts, labels = [], []
    for text, label in pairs:
        for index in range(copies):
            texts.append(f"{text}{'，' * (index % 3)}第{index}次反映")
            labels.append(label)
    return train(texts, labels)


def _complaint(text: str) -> ComplaintReceived:
    return ComplaintReceived(source="12345", data=Complaint(content=text))


def _with_folder(district: District, folder: Path) -> District:
    """The sample district, with its model looked up in another folder."""
    return dataclasses.replace(district, folder=folder)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030", "utf-8"])
def test_csv_in_utf8_with_bom_gbk_or_plain_utf8_is_read_and_empty_rows_are_counted(tmp_path, encoding):
    data = read_labelled(_write_csv(tmp_path / "orders.csv", encoding), "内容", "类别")
    assert data.texts == ["小区物业不作为，电梯坏了一个月", "工地扬尘很大，渣土车没有覆盖"]
    assert data.labels == ["property.service", "environment.dust"]
    assert data.skipped == 2


def test_xlsx_first_sheet_is_read(tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["工单编号", " 内容 ", "类别"])  # headers are trimmed
    for row in ROWS:
        sheet.append([value or None for value in row])
    sheet.append([None, None, None])  # a blank row at the end is not counted
    workbook.save(tmp_path / "orders.xlsx")
    data = read_labelled(tmp_path / "orders.xlsx", "内容", "类别")
    assert data.labels == ["property.service", "environment.dust"]
    assert data.skipped == 2


def test_a_missing_column_is_named_with_the_columns_there_are(tmp_path):
    path = _write_csv(tmp_path / "orders.csv", "utf-8-sig")
    with pytest.raises(LabelledDataError) as error:
        read_labelled(path, "正文", "类别")
    message = str(error.value)
    assert str(path) in message and "找不到文本列“正文”" in message and "text column not found" in message
    assert "“内容”" in message and "“类别”" in message
    with pytest.raises(LabelledDataError, match="找不到标签列“分类”"):
        read_labelled(path, "内容", "分类")


def test_unknown_labels_are_named(district):
    check_labels(["property.service", "other"], district.category_by_code)
    with pytest.raises(ValueError, match=r"property\.nonsense, zzz"):
        check_labels(["property.service", "zzz", "property.nonsense"], district.category_by_code)


def test_cli_train_refuses_labels_the_category_tree_does_not_know(tmp_path):
    path = _write_csv(tmp_path / "orders.csv", "utf-8-sig", rows=[("1", "工地扬尘", "environment.dust"),
                                                                   ("2", "物业不管", "property.wrong")])
    result = CliRunner().invoke(classifier_app, ["train", str(path), "--output", str(tmp_path / "m.joblib")])
    assert result.exit_code == 1
    assert "property.wrong" in result.output and not (tmp_path / "m.joblib").exists()


# --------------------------------------------------------------------------- the sample corpus and training


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, district) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "work_orders.csv"
    write_sample_corpus(path, district.folder)
    return path


@pytest.fixture(scope="module")
def sample_model(corpus) -> TrainedModel:
    data = read_labelled(corpus, "内容", "类别")
    return train(data.texts, data.labels)


def test_sample_corpus_is_deterministic_and_covers_every_leaf(district, corpus):
    rows = generate(district)
    assert rows == generate(district)
    counts = Counter(label for _, _, label in rows)
    assert set(counts) == set(leaf_categories(district))
    assert all(25 <= count <= 40 for count in counts.values()), counts
    terms = configured_terms(district)
    without_keywords = [text for _, text, _ in rows if not any(term in text for term in terms)]
    assert len(without_keywords) > len(rows) * 0.3, "paraphrases teach the model what the rules do not know"
    assert corpus.stat().st_size < 400_000
    assert read_labelled(corpus, "内容", "类别").texts == [text for _, text, _ in rows]


def test_training_on_the_sample_corpus_reaches_macro_f1_and_reports_every_class(district, sample_model):
    assert sample_model.metrics["macro_f1"] >= 0.8
    assert sample_model.metrics["n_test"] > 0 and sample_model.metrics["n_train"] > sample_model.metrics["n_test"]
    assert set(sample_model.labels) == set(leaf_categories(district))
    for label in sample_model.labels:
        assert label in sample_model.report
    assert "macro avg" in sample_model.report
    stamp, digest = sample_model.version.split("-")
    assert len(stamp) == 15 and stamp[8] == "T" and len(digest) == 8


def test_save_and_load_keep_version_and_predictions(tmp_path, sample_model):
    path = sample_model.save(tmp_path / "models" / "classifier.joblib")
    loaded = TrainedModel.load(path)
    assert loaded.version == sample_model.version and loaded.labels == sample_model.labels
    assert loaded.metrics == sample_model.metrics
    text = "小区管理公司不作为，楼道灯坏了几个月没人换"
    assert loaded.predict(text) == sample_model.predict(text)
    sidecar = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    assert sidecar["version"] == sample_model.version and sidecar["metrics"]["macro_f1"] >= 0.8
    assert [item.name for item in path.parent.iterdir() if item.name.endswith(".tmp")] == []


def test_a_file_that_is_not_a_model_is_refused_clearly(tmp_path):
    path = tmp_path / "classifier.joblib"
    path.write_text("not a model", encoding="utf-8")
    with pytest.raises(ModelFileError, match="not a civicbus classifier model"):
        TrainedModel.load(path)
    import joblib

    joblib.dump({"something": "else"}, path)
    with pytest.raises(ModelFileError, match="not a civicbus classifier model"):
        TrainedModel.load(path)


def test_a_class_with_a_single_row_is_kept_for_training_only():
    texts = [f"工地扬尘很大{i}" for i in range(6)] + [f"物业不管事{i}" for i in range(6)] + ["老板拖欠工资"]
    labels = ["environment.dust"] * 6 + ["property.service"] * 6 + ["labor.wage_arrears"]
    model = train(texts, labels)
    assert "labor.wage_arrears" in model.labels and "training only" in model.report


# --------------------------------------------------------------------------- triage with a model


def test_a_text_without_keywords_gets_the_models_category(district, sample_model):
    classifier = Classifier(district, sample_model)
    text = "市民来电反映：东湖路附近一家熟食店的卤菜苍蝇乱飞，案板上都是污垢，请尽快处理。"
    assert Classifier(district).classify(text).evidence.method == "none"
    result = classifier.classify(text)
    assert result.code == "market.food"
    assert result.evidence.method == "model" and result.evidence.model_label == "market.food"
    assert result.evidence.confidence == result.evidence.model_probability >= 0.6
    assert not result.disagreement


def test_keywords_and_an_agreeing_model_route_as_before(district, sample_model):
    result = Classifier(district, sample_model).classify("田里有人焚烧秸秆，浓烟很大")
    assert result.code == "environment.straw" and result.evidence.method == "keywords"
    assert result.evidence.model_label == "environment.straw" and not result.disagreement


def test_upstream_codes_and_alarm_types_do_not_consult_the_model(district, sample_model):
    classifier = Classifier(district, sample_model)
    assert classifier.classify("小区物业不作为", upstream_code="0401").evidence.model_label == ""
    assert classifier.classify("小区物业不作为", alarm_type="smoke").evidence.model_label == ""


def test_disagreement_between_rules_and_a_confident_model_goes_to_manual_with_both_answers(tmp_path, district):
    # A model taught, on purpose, that unpaid wages are a matter for the property manager.
    tiny = _tiny([("小区拖欠工资的事", "property.service"), ("工地扬尘满天飞", "environment.dust")])
    tiny.save(tmp_path / DEFAULT_MODEL_PATH)
    engine = TriageEngine(_with_folder(district, tmp_path))
    assert engine.classifier.model is not None and engine.classifier.model.version == tiny.version
    decision = engine.decide(_complaint("小区拖欠工资三个月了"))
    assert decision.classification.code == "labor.wage_arrears"  # the rules' answer is kept
    assert decision.classification.disagreement
    (ticket,) = decision.tickets
    assert ticket.state == "manual" and ticket.lead_unit == ""
    reason = ticket.explanation.manual_reason
    assert "规则与模型分类不一致" in reason
    assert "规则判定为“劳资纠纷/欠薪”（关键词：拖欠工资）" in reason and "模型判定为“物业小区/物业服务”" in reason
    assert ticket.explanation.category.model_label == "property.service"


def test_a_missing_model_file_means_rules_only(tmp_path, district):
    with capture_logs() as logs:
        engine = TriageEngine(_with_folder(district, tmp_path))
    assert engine.classifier.model is None
    assert any(entry["event"] == "classifier_model_missing" and entry["log_level"] == "warning" for entry in logs)
    result = engine.classify(_complaint("老板拖欠我们农民工工资三个月了"))
    assert result.code == "labor.wage_arrears" and result.evidence.model_label == ""


def test_a_broken_model_file_or_unknown_labels_stop_start_up(tmp_path, district):
    path = tmp_path / DEFAULT_MODEL_PATH
    path.parent.mkdir()
    path.write_bytes(b"\x00garbage")
    with pytest.raises(DistrictConfigError, match="not a civicbus classifier model"):
        TriageEngine(_with_folder(district, tmp_path))
    _tiny([("工地扬尘满天飞", "environment.dust"), ("新的分类", "brand.new")], copies=3).save(path)
    with pytest.raises(DistrictConfigError, match=r"brand\.new"):
        TriageEngine(_with_folder(district, tmp_path))


def test_a_batch_is_predicted_in_one_call_with_the_same_answers(sample_model):
    texts = ["工地夜间施工扬尘严重", "老板拖欠工资三个月", "楼道里电动车飞线充电", "工地夜间施工扬尘严重"]
    one_by_one = [sample_model.predict(text) for text in texts]
    calls = []
    pipeline = sample_model.pipeline
    original = pipeline.predict_proba

    def counted(batch):
        calls.append(len(batch))
        return original(batch)

    pipeline.predict_proba = counted
    try:
        with sample_model.batch(texts):
            batched = [sample_model.predict(text) for text in texts]
    finally:
        del pipeline.predict_proba
    assert batched == one_by_one
    assert calls == [3], "the batch's distinct texts, vectorized and predicted once"
