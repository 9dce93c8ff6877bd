"""The learned classification layer (学习分类): a text classifier trained from labelled historical work orders.

An operator exports work orders with their final category from the 12345 platform (CSV or xlsx), and
``civicbus classifier train`` fits a logistic regression on two kinds of features that suit Chinese — words cut by
jieba, with the district's own place, unit and keyword names added to its dictionary (a general dictionary splits
锦绣花园 or 劳动保障所 into pieces), and character n-grams (robust to the typos and run-on sentences of hotline
notes). Its probabilities must be calibrated, because triage's thresholds (``min_probability``) read them as the
chance of being right: cross-validation reports how far they are (:class:`CrossValidation`). It prints precision/recall/F1 per class on a held-out split (or K-fold cross-validation) and saves a
versioned model file. Triage loads it beside the keyword rules (:func:`load_district_model`); the rules stay the
first word, the model fills in where no keyword is found and raises a flag where it confidently disagrees (see
``classify.py``).

The office's own decisions teach it too: when a dispatcher assigns a ticket from the manual queue (人工派单) or moves
a ticket to a unit that handles another category (改派), triage's owner records the text and the category that unit
stands for (:func:`correction_of`, collection ``classifier_corrections``); ``civicbus classifier corrections``
exports them for the next training.

Model files are pickles (joblib): load only files your own operators trained — unpickling runs code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from civicbus.district import District, DistrictConfigError
from civicbus.events import EventKind, Ticket, TicketCommand, TicketState
from civicbus.logs import get_logger
from civicbus.privacy import mask_personal_data

MODEL_FORMAT = "civicbus.classifier/2"
"""Marks a joblib file as a civicbus classifier; a change that old code cannot read gets a new number."""
READABLE_FORMATS = ("civicbus.classifier/1", MODEL_FORMAT)
"""/1 (characters only) predicts through the same interface, so a model trained before an upgrade keeps working."""
METHOD = "jieba words (1–2) + characters (1–3), TF-IDF; logistic regression"
DEFAULT_MODEL_PATH = Path("models") / "classifier.joblib"
TEST_SIZE = 0.2
SEED = 20240601

log = get_logger(__name__)


class LabelledDataError(ValueError):
    """A labelled table cannot be read; the message (Chinese and English) names the file and the problem."""


class ModelFileError(ValueError):
    """A model file cannot be used; the message names the file and the problem."""


# --------------------------------------------------------------------------- reading labelled tables


SKIP_REASONS = {
    "empty_text": ("文本为空", "empty text"),
    "empty_label": ("标签为空", "empty label"),
    "unknown_label": ("类别未知", "label not in the category tree"),
}


@dataclass(frozen=True)
class SkippedRow:
    path: Path
    row: int
    """the row's number as a spreadsheet shows it (the header is row 1)"""
    reason: str
    """a key of SKIP_REASONS"""
    label: str = ""


@dataclass(frozen=True)
class LabelledData:
    path: Path
    texts: list[str]
    labels: list[str]
    skipped_rows: tuple[SkippedRow, ...] = ()
    encoding: str = ""
    rows: tuple[int, ...] = ()
    """the spreadsheet row number of each text"""

    @property
    def skipped(self) -> int:
        return len(self.skipped_rows)


def read_labelled(path: str | Path, text_column: str, label_column: str) -> LabelledData:
    """Read a CSV (UTF-8, UTF-8 with BOM, or GB18030/GBK as Chinese Excel saves it) or an .xlsx file (first sheet)
    whose first row names the columns. Rows with an empty text or label are skipped and listed."""
    path = Path(path)
    if not path.is_file():
        raise LabelledDataError(f"{path}: 文件不存在 (file not found)")
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        (header, rows), encoding = _read_xlsx(path), "xlsx"
    elif suffix in (".csv", ".txt", ""):
        header, rows, encoding = _read_csv(path)
    else:
        raise LabelledDataError(
            f"{path}: 不支持的文件类型“{path.suffix}”，请另存为 CSV 或 xlsx (unsupported file type; save as CSV or .xlsx)"
        )
    columns = [name.strip() for name in header]
    indexes = {}
    for role, wanted, chinese in (("text", text_column, "文本列"), ("label", label_column, "标签列")):
        if wanted.strip() not in columns:
            shown = "、".join(f"“{name}”" for name in columns if name) or "（无）"
            raise LabelledDataError(
                f"{path}: 找不到{chinese}“{wanted}” ({role} column not found); columns: {shown}"
            )
        indexes[role] = columns.index(wanted.strip())
    texts: list[str] = []
    labels: list[str] = []
    numbers: list[int] = []
    skipped: list[SkippedRow] = []
    for number, row in enumerate(rows, start=2):
        text = _cell(row, indexes["text"])
        label = _cell(row, indexes["label"])
        if not text or not label:
            if any(_cell(row, index) for index in range(len(row))):  # wholly empty rows are not worth a mention
                skipped.append(SkippedRow(path, number, "empty_text" if not text else "empty_label", label))
            continue
        texts.append(text)
        labels.append(label)
        numbers.append(number)
    if not texts:
        raise LabelledDataError(f"{path}: 没有可用的标注数据 (no rows with both a text and a label)")
    return LabelledData(path, texts, labels, tuple(skipped), encoding, tuple(numbers))


def _cell(row: Sequence[Any], index: int) -> str:
    if index >= len(row) or row[index] is None:
        return ""
    value = row[index]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # an Excel number such as a category code 401.0
    return " ".join(str(value).split())


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], str]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise LabelledDataError(
            f"{path}: 无法识别文件编码，请保存为 UTF-8 或 GBK (cannot decode: neither UTF-8 nor GB18030/GBK)"
        )
    # The header line tells the delimiter (Excel's "Unicode text" export uses tabs); csv.Sniffer guesses wrongly
    # on Chinese text whose sentences hold commas, semicolons or tabs of their own.
    first_line = text.split("\n", 1)[0]
    dialect = csv.excel_tab if "\t" in first_line and "," not in first_line else csv.excel
    rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    if not rows:
        raise LabelledDataError(f"{path}: 文件为空 (the file is empty)")
    if encoding == "utf-8-sig":
        encoding = "utf-8-bom" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"
    return rows[0], rows[1:], encoding


def _read_xlsx(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises several types for a file that is not a workbook
        raise LabelledDataError(f"{path}: 不是有效的 xlsx 文件 (not a valid .xlsx workbook): {error}") from error
    try:
        sheet = workbook.worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))
    finally:
        workbook.close()
    if not rows:
        raise LabelledDataError(f"{path}: 工作表为空 (the first sheet is empty)")
    header = ["" if value is None else str(value) for value in rows[0]]
    return header, rows[1:]


# --------------------------------------------------------------------------- labels as offices write them

_PATH_SEPARATORS = re.compile(r"\s*[/／>＞\\|｜]\s*")


def _path_key(label: str) -> str:
    """``生态环保 ／ 扬尘``, ``生态环保>扬尘`` and ``生态环保/扬尘`` are one path."""
    return "/".join(part for part in _PATH_SEPARATORS.split(label.strip()) if part)


class LabelResolver:
    """Turns a label as an office writes it into a category code: a code (``environment.dust``), a path of names
    (``生态环保/扬尘``), a name alone where only one category bears it (``扬尘``), or anything a mapping file
    (their label → one of those) names. Mapping entries come first."""

    def __init__(self, district: District, mapping: Mapping[str, str] | None = None) -> None:
        self._codes = set(district.category_by_code)
        self._paths = {_path_key(district.category_path(code)): code for code in self._codes}
        by_name: dict[str, set[str]] = {}
        for category, _ in district.iter_categories():
            by_name.setdefault(category.name.strip(), set()).add(category.code)
        self._names = {name: next(iter(codes)) for name, codes in by_name.items() if len(codes) == 1}
        self._mapping: dict[str, str] = {}
        unresolved = []
        for theirs, ours in (mapping or {}).items():
            code = self._resolve(ours)
            if code is None:
                unresolved.append(f"{theirs} → {ours}")
            else:
                self._mapping[" ".join(theirs.split())] = code
        if unresolved:
            raise LabelledDataError(
                "映射文件中的类别未在 categories.yaml 中配置 (mapping targets not in the category tree): "
                + "; ".join(unresolved)
            )

    def resolve(self, label: str) -> str | None:
        """The category code, or None for a label the tree does not know."""
        label = " ".join(label.split())
        return self._mapping.get(label) or self._resolve(label)

    def _resolve(self, label: str) -> str | None:
        label = label.strip()
        if label in self._codes:
            return label
        path = _path_key(label)
        return self._paths.get(path) or self._names.get(path)


def read_mapping(path: str | Path) -> dict[str, str]:
    """A mapping file: YAML (``他们的标签: 类别``) or CSV/xlsx whose first two columns are their label and the category
    (code, name or path), under a header row."""
    path = Path(path)
    if not path.is_file():
        raise LabelledDataError(f"{path}: 文件不存在 (file not found)")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise LabelledDataError(f"{path}: 不是有效的 YAML 映射 (not a valid YAML mapping): {error}") from error
        if not isinstance(loaded, dict):
            raise LabelledDataError(f"{path}: 应为“原标签: 类别”的映射 (expected a mapping of label: category)")
        return {str(key).strip(): str(value).strip() for key, value in loaded.items() if value is not None}
    header, rows = _read_xlsx(path) if path.suffix.lower() == ".xlsx" else _read_csv(path)[:2]
    if len(header) < 2:
        raise LabelledDataError(f"{path}: 映射文件须有两列：原标签、类别 (a mapping needs two columns: label, category)")
    return {_cell(row, 0): _cell(row, 1) for row in rows if _cell(row, 0) and _cell(row, 1)}


def normalise_labels(data: LabelledData, resolver: LabelResolver) -> LabelledData:
    """The same rows with their labels as category codes; rows whose label the tree does not know are skipped."""
    texts, labels, numbers = [], [], []
    skipped = list(data.skipped_rows)
    rows = data.rows or tuple(range(2, len(data.texts) + 2))
    for text, label, number in zip(data.texts, data.labels, rows, strict=True):
        code = resolver.resolve(label)
        if code is None:
            skipped.append(SkippedRow(data.path, number, "unknown_label", label))
            continue
        texts.append(text)
        labels.append(code)
        numbers.append(number)
    skipped.sort(key=lambda item: item.row)
    return LabelledData(data.path, texts, labels, tuple(skipped), data.encoding, tuple(numbers))


def combine(history: Sequence[LabelledData], corrections: Sequence[LabelledData]) -> tuple[list[str], list[str], int]:
    """Texts and labels of every file; a dispatcher's correction replaces the historical rows with the same text
    (the office's latest word on it). Returns the number of historical rows replaced too."""
    corrected = {text for data in corrections for text in data.texts}
    texts: list[str] = []
    labels: list[str] = []
    replaced = 0
    for data in history:
        for text, label in zip(data.texts, data.labels, strict=True):
            if text in corrected:
                replaced += 1
                continue
            texts.append(text)
            labels.append(label)
    for data in corrections:
        texts.extend(data.texts)
        labels.extend(data.labels)
    return texts, labels, replaced


def skipped_report(skipped: Iterable[SkippedRow], shown: int = 10) -> list[str]:
    """One line per file and reason: how many rows, which ones (the first ``shown``), and the unknown labels."""
    groups: dict[tuple[Path, str], list[SkippedRow]] = {}
    for item in skipped:
        groups.setdefault((item.path, item.reason), []).append(item)
    lines = []
    for (path, reason), items in groups.items():
        chinese, english = SKIP_REASONS[reason]
        numbers = "、".join(str(item.row) for item in items[:shown]) + ("…" if len(items) > shown else "")
        line = f"{path.name}: {chinese} ({english}) — {len(items)} 行 rows: 第 {numbers} 行"
        if reason == "unknown_label":
            counts = Counter(item.label for item in items)
            line += "; 标签 labels: " + "、".join(f"“{label}”×{count}" for label, count in counts.most_common(shown))
        lines.append(line)
    return lines


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    runner_up: str = ""
    runner_up_probability: float = 0.0


@dataclass
class TrainedModel:
    version: str
    """``<UTC time of training>-<8 hex digits of a hash of the training data>``, e.g. ``20261125T103000-1a2b3c4d``"""
    trained_at: datetime
    labels: list[str]
    metrics: dict[str, float | int]
    """macro_f1, accuracy (on the held-out split), n_train, n_test, n_total, seconds (to fit the saved model)"""
    pipeline: Any = field(repr=False)
    report: str = field(default="", repr=False)
    """the per-class precision/recall/F1 table of the held-out split (sklearn's classification_report)"""
    sklearn_version: str = ""
    method: str = METHOD

    _prefetched: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @contextmanager
    def batch(self, texts: Iterable[str]) -> Iterator[None]:
        """Run the vectorizer and the model once for a whole batch of texts instead of once per event (a third of
        triage's time on complaints went to per-event calls); :meth:`predict` answers from it meanwhile."""
        unique = list(dict.fromkeys(text for text in texts if text.strip()))
        self._prefetched = dict(zip(unique, self.pipeline.predict_proba(unique), strict=True)) if unique else {}
        try:
            yield
        finally:
            self._prefetched = {}

    def predict(self, text: str, within: str = "") -> Prediction:
        """The most probable label and the runner-up. ``within`` (a category code) considers only that category and
        its descendants; their probabilities are not renormalised, so a narrowed answer is never more confident."""
        probabilities = self._prefetched.get(text)
        if probabilities is None:
            probabilities = self.pipeline.predict_proba([text])[0]
        classes = self.pipeline.classes_
        ranked = sorted(
            (
                (float(probability), str(label))
                for label, probability in zip(classes, probabilities, strict=True)
                if not within or label == within or str(label).startswith(within + ".")
            ),
            key=lambda item: (-item[0], item[1]),
        )
        if not ranked:
            return Prediction("", 0.0)
        best_probability, best = ranked[0]
        runner_probability, runner_up = ranked[1] if len(ranked) > 1 else (0.0, "")
        return Prediction(best, round(best_probability, 4), runner_up, round(runner_probability, 4))

    def metadata(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": self.version,
            "trained_at": self.trained_at.isoformat(),
            "labels": list(self.labels),
            "metrics": dict(self.metrics),
            "sklearn_version": self.sklearn_version,
            "method": self.method,
            "report": self.report,
        }

    def save(self, path: str | Path) -> Path:
        """Write the model (joblib) and ``<path>.json`` with its metadata for humans, each atomically (a temporary
        file in the same folder, then a rename), so a running triage never reads half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        import joblib

        payload = {**self.metadata(), "pipeline": self.pipeline}
        _atomic_write(path, lambda handle: joblib.dump(payload, handle, compress=3))
        sidecar = json.dumps(self.metadata(), ensure_ascii=False, indent=2).encode() + b"\n"
        _atomic_write(Path(f"{path}.json"), lambda handle: handle.write(sidecar))
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: model file not found (模型文件不存在)")
        import joblib

        try:
            payload = joblib.load(path)
        except Exception as error:  # a truncated file, another pickle, a text file: all the same to the operator
            raise ModelFileError(
                f"{path}: not a civicbus classifier model (不是 civicbus 分类模型文件): {type(error).__name__}: {error}"
            ) from error
        if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
            found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise ModelFileError(
                f"{path}: not a civicbus classifier model (不是 civicbus 分类模型文件): expected format "
                f"{MODEL_FORMAT!r}, found {found!r}; train one with `civicbus classifier train`"
            )
        try:
            return cls(
                version=str(payload["version"]),
                trained_at=datetime.fromisoformat(payload["trained_at"]),
                labels=list(payload["labels"]),
                metrics=dict(payload["metrics"]),
                pipeline=payload["pipeline"],
                report=str(payload.get("report", "")),
                sklearn_version=str(payload.get("sklearn_version", "")),
                method=str(payload.get("method", "characters (1–3), TF-IDF; logistic regression")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFileError(f"{path}: damaged civicbus classifier model (模型文件已损坏): {error!r}") from error


def _atomic_write(path: Path, write: Any) -> None:
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)  # temporary files are private (0600); a model is read by the services' user
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- training


def data_hash(texts: Sequence[str], labels: Sequence[str]) -> str:
    """A hash of the training rows that does not depend on their order."""
    digest = hashlib.sha256()
    for text, label in sorted(zip(texts, labels, strict=True)):
        digest.update(f"{label}\x1f{text}\x1e".encode())
    return digest.hexdigest()


C = 100.0
"""Inverse regularisation strength of the logistic regression. Its probabilities are calibrated by its loss (log
loss); with some forty classes a stronger prior spreads them so thin that right answers stay under
``min_probability`` (0.6): on the sample corpus (5-fold) C=100 gives a top probability of 0.89 on average at 97 %
accuracy, the former character-only model (C=20) 0.71 at 96 %, at the same macro F1."""
_HAS_WORD = re.compile(r"\w")


class WordTokenizer:
    """jieba's word segmentation, with the district's own words added to its dictionary.

    A class at module level, not a closure, so a pickled model loads in any process; the words are its state. jieba's
    dictionary (tens of MB) is built on first use in each process and is never pickled."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words = tuple(sorted({word.strip() for word in words if len(word.strip()) > 1}))
        self._jieba: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"words": self.words}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.words = tuple(state["words"])
        self._jieba = None

    def __call__(self, text: str) -> list[str]:
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)  # jieba announces its dictionary on stderr otherwise
            segmenter = jieba.Tokenizer()
            for word in self.words:
                segmenter.add_word(word)
            self._jieba = segmenter
        return [token for token in self._jieba.cut(text) if _HAS_WORD.search(token)]


def district_words(district: District) -> list[str]:
    """What a general dictionary does not know: the names of units, villages and communities, the roads, 小区 and
    landmarks the locator knows, and the categories' names and keywords."""
    words = {unit.name for unit in district.units.values()}
    for area in district.areas:
        words.update((area.name, area.unit.name, *area.address_keywords))
    for category, _ in district.iter_categories():
        words.add(category.name)
        words.update(keyword.term for keyword in category.keywords)
    return sorted(words)


def _pipeline(seed: int, words: Iterable[str] = ()) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion([
        ("words", TfidfVectorizer(tokenizer=WordTokenizer(words), token_pattern=None, lowercase=False,
                                  ngram_range=(1, 2), sublinear_tf=True)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)),
    ])
    return Pipeline([
        ("features", features),
        ("classifier", LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=seed)),
    ])


def _split(labels: Sequence[str], test_size: float, seed: int) -> tuple[list[int], list[int], str]:
    """Row indexes for training and held-out testing, stratified by label. Labels with fewer than two rows are kept
    for training only (they cannot be both learnt and tested); with too few rows nothing is held out."""
    from sklearn.model_selection import train_test_split

    counts = Counter(labels)
    rare = [index for index, label in enumerate(labels) if counts[label] < 2]
    common = [index for index, label in enumerate(labels) if counts[label] >= 2]
    classes = len({labels[index] for index in common})
    n_test = int(round(len(common) * test_size))
    if classes < 2 or n_test < classes or len(common) - n_test < classes:
        note = "too few rows for a held-out split: the figures below are on the training rows (样本过少，未留出测试集)"
        return list(range(len(labels))), [], note
    train, test = train_test_split(
        common, test_size=n_test, random_state=seed, stratify=[labels[index] for index in common]
    )
    note = ""
    if rare:
        names = "、".join(sorted({labels[index] for index in rare}))
        note = f"labels with a single row, used for training only (仅一条样本，未参与测试): {names}"
    return sorted([*train, *rare]), sorted(test), note


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    words: Iterable[str] = (),
    test_size: float = TEST_SIZE,
    seed: int = SEED,
    now: datetime | None = None,
) -> TrainedModel:
    """Fit on a stratified training split, measure on the held-out rows, then refit on every row for the saved
    model (the figures describe the method on unseen rows; the model learns from all of them). ``words`` go into
    the word segmenter's dictionary (:func:`district_words`)."""
    import sklearn
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    if len(set(labels)) < 2:
        raise ValueError(f"need at least two different labels to train a classifier (至少需要两个类别), got {set(labels)}")
    texts, labels, words = list(texts), list(labels), list(words)
    train_rows, test_rows, note = _split(labels, test_size, seed)
    evaluate_rows = test_rows or train_rows
    started = time.perf_counter()
    pipeline = _pipeline(seed, words).fit([texts[i] for i in train_rows], [labels[i] for i in train_rows])
    seconds = time.perf_counter() - started
    truth = [labels[i] for i in evaluate_rows]
    predicted = list(pipeline.predict([texts[i] for i in evaluate_rows]))
    report = classification_report(truth, predicted, digits=3, zero_division=0)
    if note:
        report = f"{report}\n{note}\n"
    metrics: dict[str, float | int] = {
        "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "n_train": len(train_rows),
        "n_test": len(test_rows),
        "n_total": len(texts),
    }
    if test_rows:
        started = time.perf_counter()
        pipeline = _pipeline(seed, words).fit(texts, labels)
        seconds = time.perf_counter() - started
    metrics["seconds"] = round(seconds, 2)
    trained_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return TrainedModel(
        version=f"{trained_at:%Y%m%dT%H%M%S}-{data_hash(texts, labels)[:8]}",
        trained_at=trained_at,
        labels=sorted(str(label) for label in pipeline.classes_),
        metrics=metrics,
        pipeline=pipeline,
        report=report,
        sklearn_version=sklearn.__version__,
    )


@dataclass(frozen=True)
class CrossValidation:
    """K-fold stratified cross-validation of the training method: every row is predicted once by a model that did
    not see it."""

    folds: int
    accuracy: list[float]
    macro_f1: list[float]
    seconds: list[float]
    """time to fit each fold's model"""
    calibration_error: float
    """expected calibration error of the top probability (10 bins): 0 when it says exactly how often it is right"""
    report: str
    """per-class precision/recall/F1 over the pooled out-of-fold predictions"""
    note: str = ""

    def summary(self) -> str:
        from statistics import fmean, pstdev

        return (
            f"{self.folds}-fold stratified CV ({self.folds} 折分层交叉验证): macro F1 {fmean(self.macro_f1):.3f} "
            f"± {pstdev(self.macro_f1):.3f}, accuracy {fmean(self.accuracy):.3f} ± {pstdev(self.accuracy):.3f}, "
            f"calibration error (概率校准误差) {self.calibration_error:.3f}, "
            f"{fmean(self.seconds):.1f} s to fit a fold"
        )


def cross_validate(
    texts: Sequence[str], labels: Sequence[str], folds: int = 5, *, words: Iterable[str] = (), seed: int = SEED
) -> CrossValidation:
    """Stratified K-fold cross-validation. Labels with fewer rows than folds are used for training in every fold
    and not tested (they cannot be spread over the folds)."""
    import numpy as np
    from sklearn.metrics import accuracy_score, classification_report, f1_score
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ValueError(f"--folds must be at least 2 (交叉验证至少 2 折), got {folds}")
    texts, labels, words = list(texts), list(labels), list(words)
    counts = Counter(labels)
    common = [index for index, label in enumerate(labels) if counts[label] >= folds]
    rare = [index for index, label in enumerate(labels) if counts[label] < folds]
    if len({labels[index] for index in common}) < 2:
        raise ValueError(f"fewer than two labels have {folds} rows or more: too few for {folds}-fold cross-validation "
                         f"(样本过少，无法进行 {folds} 折交叉验证)")
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    accuracy, macro_f1, seconds = [], [], []
    truth: list[str] = []
    predicted: list[str] = []
    top: list[float] = []
    for train_part, test_part in splitter.split(common, [labels[index] for index in common]):
        train_rows = [common[i] for i in train_part] + rare
        test_rows = [common[i] for i in test_part]
        started = time.perf_counter()
        pipeline = _pipeline(seed, words).fit([texts[i] for i in train_rows], [labels[i] for i in train_rows])
        seconds.append(time.perf_counter() - started)
        probabilities = pipeline.predict_proba([texts[i] for i in test_rows])
        answers = [str(label) for label in pipeline.classes_[probabilities.argmax(axis=1)]]
        expected = [labels[i] for i in test_rows]
        accuracy.append(float(accuracy_score(expected, answers)))
        macro_f1.append(float(f1_score(expected, answers, average="macro", zero_division=0)))
        truth.extend(expected)
        predicted.extend(answers)
        top.extend(float(value) for value in probabilities.max(axis=1))
    confidence = np.array(top)
    right = np.array(truth) == np.array(predicted)
    bins = np.minimum((confidence * 10).astype(int), 9)
    calibration_error = sum(
        abs(right[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
        for b in range(10) if (bins == b).any()
    )
    note = ""
    if rare:
        names = "、".join(sorted({labels[index] for index in rare}))
        note = f"labels with fewer than {folds} rows, used for training only (样本少于 {folds} 条，未参与测试): {names}"
    return CrossValidation(
        folds=folds,
        accuracy=[round(value, 4) for value in accuracy],
        macro_f1=[round(value, 4) for value in macro_f1],
        seconds=[round(value, 2) for value in seconds],
        calibration_error=round(float(calibration_error), 4),
        report=classification_report(truth, predicted, digits=3, zero_division=0),
        note=note,
    )


# --------------------------------------------------------------------------- with the configuration


def check_labels(model_or_labels: TrainedModel | Iterable[str], known_codes: Iterable[str]) -> None:
    """Raise ValueError naming the labels the category tree does not know."""
    labels = model_or_labels.labels if isinstance(model_or_labels, TrainedModel) else model_or_labels
    known = set(known_codes)
    unknown = sorted({label for label in labels if label not in known})
    if unknown:
        raise ValueError(
            f"{len(unknown)} label(s) not in the category tree (类别代码未在 categories.yaml 中配置): "
            + ", ".join(unknown)
        )


def model_path(district: District) -> Path | None:
    settings = district.categories.model
    return None if settings is None else district.folder / settings.path


def load_district_model(district: District) -> TrainedModel | None:
    """The model ``categories.yaml`` names, or None without one. A missing file is a warning (triage runs on the
    rules alone); a file that is not a model, or whose labels the category tree does not know, stops start-up."""
    path = model_path(district)
    if path is None:
        return None
    if not path.is_file():
        log.warning(
            "classifier_model_missing",
            path=str(path),
            hint="train one with `civicbus classifier train`; classifying by the keyword rules alone",
        )
        return None
    try:
        model = TrainedModel.load(path)
    except ModelFileError as error:
        raise DistrictConfigError(str(error)) from error
    try:
        check_labels(model, district.category_by_code)
    except ValueError as error:
        raise DistrictConfigError(f"{path}: {error}; retrain the model or fix categories.yaml") from error
    log.info("classifier_model_loaded", path=str(path), version=model.version, labels=len(model.labels))
    return model


# --------------------------------------------------------------------------- learning from the dispatchers' decisions

CORRECTIONS_COLLECTION = "classifier_corrections"
"""One document per decision, keyed by command id, written by triage's owner when it applies the command."""
CORRECTION_COLUMNS = ("工单编号", "内容", "类别", "类别名称", "原类别", "模型类别", "派单单位", "来源", "候选类别", "时间")
"""The export's columns; ``内容`` and ``类别`` are what training reads."""
CORRECTION_KINDS = {"manual_dispatch": "人工派单", "reassign": "改派"}


def categories_led_by(unit: str, labels: Mapping[str, str], district: District, router: Any) -> list[str]:
    """The leaf categories for which the routing tree would make ``unit`` the lead of a ticket with these labels.
    A village or community chosen for a ticket whose place was unknown stands for that place too."""
    labels = dict(labels)
    if not labels.get("area") and unit in district.units and district.units[unit].is_area_unit:
        labels["area"] = unit
    found = []
    for category, _ in district.iter_categories():
        if category.children:
            continue
        asked = {**labels, "category": category.code, "category_root": category.code.split(".", 1)[0]}
        if any(assignment.lead_unit == unit for assignment in router.assign(asked)):
            found.append(category.code)
    return found


def correction_of(
    before: Ticket, after: Ticket, command: TicketCommand, district: District, router: Any
) -> dict[str, Any] | None:
    """The labelled example a dispatcher's 改派 makes, or None. A command carries the unit, not a category, so the
    category is the one that unit handles by the routing tree: triage's own answer if the unit handles it, else the
    model's or the runner-up, else the only category the unit leads. Every assignment from the manual queue
    (人工派单) is an example (a confirmation is one too); a reassignment of a routed ticket only when the new unit does
    not handle its category. Where the unit leads several categories and none of the candidates, the label is left
    empty and the candidates are listed, for a person to choose in the export."""
    if before.event_kind is EventKind.alarm_raised or not before.content.strip():
        return None  # alarms are classified by their type, not their text
    manual = before.state is TicketState.manual
    found = categories_led_by(after.lead_unit, before.explanation.labels, district, router)
    if not found or (not manual and before.category in found):
        return None  # a unit the rules never lead with, or another unit for the same category (another village)
    evidence = before.explanation.category
    candidates = [before.category] if manual else []
    candidates += [evidence.model_label, evidence.runner_up]
    label = next((code for code in candidates if code and code in found), found[0] if len(found) == 1 else "")
    title_is_excerpt = before.title == before.content[:30]
    return {
        "ticket_id": before.ticket_id,
        "command_id": command.event_id,
        # Training data keeps no personal data: a number the citizen typed teaches the model nothing anyway.
        "text": mask_personal_data(before.content if title_is_excerpt else f"{before.title} {before.content}"),
        "label": label,
        "original": before.category,
        "model_label": evidence.model_label,
        "unit": after.lead_unit,
        "kind": "manual_dispatch" if manual else "reassign",
        "candidates": [] if label else found,
        "decided_at": command.occurred_at,
    }


def correction_rows(documents: Iterable[Mapping[str, Any]], district: District) -> list[list[str]]:
    """Rows of the export (CORRECTION_COLUMNS), oldest first, in the district's time."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(district.timezone)
    path = district.category_path
    units = district.units
    rows = []
    for item in sorted(documents, key=lambda document: (document["decided_at"], document["command_id"])):
        decided_at: datetime = item["decided_at"]
        if decided_at.tzinfo is None:
            decided_at = decided_at.replace(tzinfo=UTC)
        rows.append([
            item["ticket_id"], item["text"], item["label"], path(item["label"]) if item["label"] else "",
            item["original"], item["model_label"], units[item["unit"]].name if item["unit"] in units else item["unit"],
            CORRECTION_KINDS.get(item["kind"], item["kind"]), "、".join(item.get("candidates", [])),
            f"{decided_at.astimezone(zone):%Y-%m-%d %H:%M}",
        ])
    return rows


def write_corrections(rows: Sequence[Sequence[str]], path: str | Path) -> Path:
    """The export as UTF-8 CSV with a BOM (Excel opens it as Chinese), written atomically."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CORRECTION_COLUMNS)
    writer.writerows(rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buffer.getvalue().encode("utf-8-sig")
    _atomic_write(path, lambda handle: handle.write(data))
    return path
