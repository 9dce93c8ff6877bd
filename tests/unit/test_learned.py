"""The learned classification layer: reading labelled tables, training, model files, and triage with a model."""

from __future__ import annotations

import csv
import dataclasses
import json
import pickle
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook
from structlog.testing import capture_logs
from typer.testing import CliRunner

from civicbus.district import District, DistrictConfigError
from civicbus.events import Action, Actor, Complaint, ComplaintReceived, TicketCommand
from services.triage.classify import Classifier
from services.triage.decide import TriageEngine
from services.triage.learned import (
    CORRECTION_COLUMNS,
    DEFAULT_MODEL_PATH,
    LabelledDataError,
    LabelResolver,
    ModelFileError,
    TrainedModel,
    WordTokenizer,
    check_labels,
    combine,
    correction_of,
    correction_rows,
    cross_validate,
    district_words,
    normalise_labels,
    read_labelled,
    read_mapping,
    skipped_report,
    train,
    write_corrections,
)
from services.triage.lifecycle import Applied, apply
from services.triage.routing_config import ROUTING_FILE
from services.triage.learned_cli import classifier_app
from services.triage.sample_corpus import (
    CORPUS_FILE,
    PHRASES_FILE,
    configured_terms,
    generate,
    leaf_categories,
    write_sample_corpus,
)

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
    """The sample district, with its model looked up in another folder (beside the sample's routing.yaml, which
    triage reads from the same folder)."""
    shutil.copy(district.folder / ROUTING_FILE, folder / ROUTING_FILE)
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


def test_the_committed_sample_corpus_is_the_one_its_phrases_write(district, corpus):
    """training/work_orders.csv is written from training/phrases.yaml: a change to one needs the other written again."""
    assert corpus.read_bytes() == (district.folder / CORPUS_FILE).read_bytes()


def test_a_broken_or_missing_phrases_file_is_named(district, tmp_path):
    folder = shutil.copytree(district.folder, tmp_path / "district", ignore=shutil.ignore_patterns("models"))
    (folder / PHRASES_FILE).write_text("version: 1\nopeners: []\ncategories: {}\n", encoding="utf-8")
    with pytest.raises(DistrictConfigError, match="phrases.yaml: openers: .*at least 1 item"):
        write_sample_corpus(tmp_path / "out.csv", folder)
    (folder / PHRASES_FILE).unlink()
    with pytest.raises(DistrictConfigError, match="phrases.yaml"):
        write_sample_corpus(tmp_path / "out.csv", folder)
    assert not (tmp_path / "out.csv").exists()


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


# --------------------------------------------------------------------------- Chinese words


def test_the_districts_own_names_are_whole_words_and_the_tokenizer_pickles_without_jieba(district):
    text = "锦绣花园二期楼下，劳动保障所门口"
    plain = WordTokenizer()(text)
    assert "锦绣花园" not in plain and "劳动保障所" not in plain, "a general dictionary splits them"
    tokenizer = WordTokenizer(district_words(district))
    words = tokenizer(text)
    assert "锦绣花园" in words and "劳动保障所" in words
    assert "，" not in words, "punctuation is no word"
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy.__dict__ == {"words": tokenizer.words, "_jieba": None}, "the jieba dictionary is not pickled"
    assert copy(text) == words


def test_district_words_name_units_places_and_keywords(district):
    words = set(district_words(district))
    assert {"劳动保障所", "锦绣花园", "西溪大道", "拖欠工资", "扬尘"} <= words


# --------------------------------------------------------------------------- labels as offices write them


def _data(tmp_path: Path, labels: list[str]):
    rows = [(str(index), f"第{index}条工单内容", label) for index, label in enumerate(labels)]
    return read_labelled(_write_csv(tmp_path / "orders.csv", "utf-8", rows=rows), "内容", "类别")


def test_labels_may_be_codes_paths_or_unique_names_and_unknown_ones_are_skipped_by_row(tmp_path, district):
    data = _data(tmp_path, ["environment.dust", "生态环保/扬尘", "生态环保 ／ 扬尘", "生态环保>扬尘", "扬尘",
                            "劳资纠纷/欠薪", "工地", "environment.nope", ""])
    normalised = normalise_labels(data, LabelResolver(district))
    assert normalised.labels == ["environment.dust"] * 5 + ["labor.wage_arrears"]
    assert normalised.texts[0] == "第0条工单内容" and normalised.rows == (2, 3, 4, 5, 6, 7)
    assert [(row.row, row.reason, row.label) for row in normalised.skipped_rows] == [
        (8, "unknown_label", "工地"), (9, "unknown_label", "environment.nope"), (10, "empty_label", "")]


def test_a_name_two_categories_share_is_not_guessed(district):
    names = Counter(category.name for category, _ in district.iter_categories())
    shared = [name for name, count in names.items() if count > 1]
    resolver = LabelResolver(district)
    for name in shared:
        assert resolver.resolve(name) is None


@pytest.mark.parametrize("suffix", [".yaml", ".csv"])
def test_a_mapping_file_translates_their_labels(tmp_path, district, suffix):
    path = tmp_path / f"mapping{suffix}"
    if suffix == ".yaml":
        path.write_text("扬尘污染: environment.dust\n拖欠薪资: 劳资纠纷/欠薪\n", encoding="utf-8")
    else:
        _write_csv(path, "gb18030", rows=[("扬尘污染", "environment.dust"), ("拖欠薪资", "劳资纠纷/欠薪")],
                   header=("原类别", "类别"))
    mapping = read_mapping(path)
    resolver = LabelResolver(district, mapping)
    assert resolver.resolve("扬尘污染") == "environment.dust" and resolver.resolve(" 拖欠薪资 ") == "labor.wage_arrears"
    assert resolver.resolve("生态环保/扬尘") == "environment.dust", "codes and paths still work beside a mapping"
    with pytest.raises(LabelledDataError, match="乱七八糟"):
        LabelResolver(district, {**mapping, "其他": "乱七八糟"})


def test_skipped_rows_are_reported_by_file_reason_and_row(tmp_path, district):
    rows = [("1", "", "environment.dust"), ("2", "工地扬尘", "工地"), ("3", "扬尘", "工地"), ("4", "ok", "扬尘"),
            ("5", "物业", "")]
    data = normalise_labels(read_labelled(_write_csv(tmp_path / "a.csv", "utf-8", rows=rows), "内容", "类别"),
                            LabelResolver(district))
    lines = skipped_report(data.skipped_rows)
    assert lines == [
        "a.csv: 文本为空 (empty text) — 1 行 rows: 第 2 行",
        "a.csv: 类别未知 (label not in the category tree) — 2 行 rows: 第 3、4 行; 标签 labels: “工地”×2",
        "a.csv: 标签为空 (empty label) — 1 行 rows: 第 6 行",
    ]


def test_a_correction_replaces_historical_rows_with_the_same_text(tmp_path):
    history = _data(tmp_path, ["a", "b"])
    corrected = dataclasses.replace(history, texts=["第1条工单内容"], labels=["c"])
    assert combine([history], [corrected]) == (["第0条工单内容", "第1条工单内容"], ["a", "c"], 1)


# --------------------------------------------------------------------------- cross-validation

PAIRS = [("工地扬尘满天飞", "environment.dust"), ("老板拖欠工资不给", "labor.wage_arrears"),
         ("楼道电动车飞线充电", "property.flying_wire")]


def test_cross_validation_reports_every_fold_and_keeps_rare_labels_for_training():
    texts = [f"{text}{'，' * (i % 3)}第{i}次" for text, _ in PAIRS for i in range(6)] + ["河里死鱼发臭"]
    labels = [label for _, label in PAIRS for _ in range(6)] + ["environment.water"]
    result = cross_validate(texts, labels, 3)
    assert result.folds == 3 and len(result.macro_f1) == len(result.accuracy) == len(result.seconds) == 3
    assert min(result.macro_f1) == 1.0, "three clearly different classes"
    assert 0 <= result.calibration_error < 0.5
    assert "environment.water" in result.note and "environment.water" not in result.report
    assert "3-fold" in result.summary() and "macro F1 1.000" in result.summary()
    with pytest.raises(ValueError, match="at least 2"):
        cross_validate(texts, labels, 1)


def test_cli_train_takes_several_files_a_mapping_and_folds_and_lists_what_it_skipped(tmp_path):
    rows = [(str(i), f"{text}{'，' * (i % 3)}第{i}次", theirs)
            for i in range(6) for text, theirs in (("工地扬尘满天飞", "扬尘污染"), ("老板拖欠工资不给", "劳资纠纷/欠薪"))]
    first = _write_csv(tmp_path / "a.csv", "utf-8-sig", rows=[*rows, ("x", "物业不管", "物业管理")])
    second = _write_csv(tmp_path / "b.csv", "gb18030", rows=[("y", "", "扬尘"), *[
        (f"z{i}", f"楼道电动车飞线充电{i}", "property.flying_wire") for i in range(6)]])
    mapping = tmp_path / "map.yaml"
    mapping.write_text("扬尘污染: environment.dust\n", encoding="utf-8")
    model_file = tmp_path / "m.joblib"
    result = CliRunner().invoke(classifier_app, ["train", str(first), str(second), "--mapping", str(mapping),
                                                 "--folds", "3", "--output", str(model_file)])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "a.csv: 类别未知 (label not in the category tree) — 1 行 rows: 第 14 行; 标签 labels: “物业管理”×1" in output
    assert "b.csv: 文本为空 (empty text) — 1 行 rows: 第 2 行" in output
    assert "3-fold stratified CV" in output and "skipped 2" in output
    assert TrainedModel.load(model_file).labels == ["environment.dust", "labor.wage_arrears", "property.flying_wire"]


# --------------------------------------------------------------------------- learning from the dispatchers


def _reassigned(engine: TriageEngine, text: str, unit: str) -> tuple:
    """A ticket triage made of ``text``, and the same ticket after the dispatcher's 改派 to ``unit``."""
    (before,) = engine.decide(_complaint(text)).tickets
    command = TicketCommand(source="test", ticket_id=before.ticket_id, action=Action.reassign, unit=unit,
                            actor=Actor(name="综治中心 派单员", role="unit", unit=engine.district.dispatcher.id))
    result = apply(before, command, datetime.now(UTC), engine.district)
    assert isinstance(result, Applied)
    return before, result.ticket, command


def test_a_manual_dispatch_or_a_reassignment_to_another_category_is_a_labelled_example(tmp_path, district):
    engine = TriageEngine(_with_folder(district, tmp_path))  # rules only
    manual = _reassigned(engine, "兄弟三人为赡养老母亲的事吵得不可开交，请帮忙", "sifa")
    assert manual[0].state == "manual"
    found = correction_of(*manual, engine.district, engine.router)
    assert found is not None
    assert (found["label"], found["original"], found["kind"], found["unit"]) == (
        "police.dispute", "other", "manual_dispatch", "sifa")  # 司法所 leads one category only
    assert found["text"] == "兄弟三人为赡养老母亲的事吵得不可开交，请帮忙" and found["command_id"] == manual[2].event_id
    phoned = _reassigned(engine, "兄弟三人为赡养老母亲的事吵得不可开交，请回电13800138000", "sifa")
    with_phone = correction_of(*phoned, engine.district, engine.router)
    assert "13800138000" not in with_phone["text"], "training data keeps no personal data"

    several = correction_of(*_reassigned(engine, "今天天气不错", "laobao"), engine.district, engine.router)
    assert several is not None and several["label"] == ""
    assert several["candidates"] == ["labor.wage_arrears", "labor.dispute"], "for a person to choose in the export"

    routed = _reassigned(engine, "老板拖欠我们农民工工资三个月了", "sifa")
    assert routed[0].state == "routed" and routed[0].category == "labor.wage_arrears"
    moved = correction_of(*routed, engine.district, engine.router)
    assert moved is not None and (moved["label"], moved["kind"]) == ("police.dispute", "reassign")

    # Another village for a complaint its category sends to the village: the category was right.
    village = _reassigned(engine, "锦绣花园小区物业不作为，垃圾没人清运", "xixi")
    assert village[0].lead_unit and village[0].lead_unit != "xixi"
    assert correction_of(*village, engine.district, engine.router) is None


def test_a_model_retrained_with_the_dispatchers_corrections_gets_right_what_it_got_wrong(tmp_path, district):
    history = _write_csv(tmp_path / "history.csv", "utf-8", rows=[
        (str(i), f"{text}{'，' * (i % 3)}第{i}次反映", label)
        for i in range(6) for text, label in (*PAIRS, ("邻居家装修噪音太大", "property.neighbor"))])
    resolver = LabelResolver(district)
    before = train(*combine([normalise_labels(read_labelled(history, "内容", "类别"), resolver)], [])[:2])
    unseen = "兄弟几个为老人生活费的事吵得不可开交"
    assert before.predict(unseen).label != "police.dispute"

    # The office at work: family quarrels reach the manual queue; the dispatcher sends them to 司法所.
    engine = TriageEngine(_with_folder(district, tmp_path))
    documents = []
    for text in ("兄弟三人为赡养老母亲的事吵得不可开交，请帮忙", "姐弟俩为了赡养老人的事闹翻了，天天吵",
                 "兄妹几个为父亲的赡养费吵得不可开交", "老人的几个子女为赡养问题闹矛盾，互相推诿"):
        documents.append(correction_of(*_reassigned(engine, text, "sifa"), engine.district, engine.router))
    exported = write_corrections(correction_rows(documents, district), tmp_path / "corrections.csv")
    corrections = read_labelled(exported, CORRECTION_COLUMNS[1], CORRECTION_COLUMNS[2])
    assert set(corrections.labels) == {"police.dispute"} and len(corrections.texts) == 4

    after = train(*combine([normalise_labels(read_labelled(history, "内容", "类别"), resolver)],
                           [normalise_labels(corrections, resolver)])[:2])
    assert after.predict(unseen).label == "police.dispute"
    assert after.predict("工地扬尘满天飞").label == "environment.dust", "what it knew, it still knows"


def test_the_corrections_export_is_a_csv_for_people_and_for_training(tmp_path, district):
    document = {"ticket_id": "SF1", "command_id": "c1", "text": "兄弟吵架", "label": "", "original": "other",
                "model_label": "", "unit": "laobao", "kind": "manual_dispatch",
                "candidates": ["labor.wage_arrears", "labor.dispute"],
                "decided_at": datetime(2026, 11, 30, 2, 5, tzinfo=UTC)}
    path = write_corrections(correction_rows([document, {**document, "command_id": "c2", "label": "police.dispute",
                                                         "unit": "sifa", "candidates": []}], district),
                             tmp_path / "out.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf"), "Excel opens it as Chinese"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(CORRECTION_COLUMNS)
    assert rows[1] == ["SF1", "兄弟吵架", "", "", "other", "", "劳动保障所", "人工派单",
                       "labor.wage_arrears、labor.dispute", "2026-11-30 10:05"]
    assert rows[2][2:4] == ["police.dispute", "公共安全/纠纷警情"]
    data = read_labelled(path, "内容", "类别")
    assert data.labels == ["police.dispute"] and [row.reason for row in data.skipped_rows] == ["empty_label"]
