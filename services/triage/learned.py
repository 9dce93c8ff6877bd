"""The learned classification layer (学习分类): a text classifier trained from labelled historical work orders.

An operator exports work orders with their final category from the 12345 platform (CSV or xlsx), and
``civicbus classifier train`` fits character n-gram TF-IDF features with a logistic regression (CPU, seconds), prints
precision/recall/F1 per class on a held-out split and saves a versioned model file. Triage loads it beside the keyword
rules (:func:`load_district_model`); the rules stay the first word, the model fills in where no keyword is found and
raises a flag where it confidently disagrees (see ``classify.py``).

Model files are pickles (joblib): load only files your own operators trained — unpickling runs code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from civicbus.district import District, DistrictConfigError
from civicbus.logs import get_logger

MODEL_FORMAT = "civicbus.classifier/1"
"""Marks a joblib file as a civicbus classifier; a change that old code cannot read gets a new number."""
DEFAULT_MODEL_PATH = Path("models") / "classifier.joblib"
TEST_SIZE = 0.2
SEED = 20240601

log = get_logger(__name__)


class LabelledDataError(ValueError):
    """A labelled table cannot be read; the message (Chinese and English) names the file and the problem."""


class ModelFileError(ValueError):
    """A model file cannot be used; the message names the file and the problem."""


# --------------------------------------------------------------------------- reading labelled tables


@dataclass(frozen=True)
class LabelledData:
    path: Path
    texts: list[str]
    labels: list[str]
    skipped: int = 0
    """rows with an empty text or label"""
    encoding: str = ""


def read_labelled(path: str | Path, text_column: str, label_column: str) -> LabelledData:
    """Read a CSV (UTF-8, UTF-8 with BOM, or GB18030/GBK as Chinese Excel saves it) or an .xlsx file (first sheet)
    whose first row names the columns. Rows with an empty text or label are skipped and counted."""
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
    skipped = 0
    for row in rows:
        text = _cell(row, indexes["text"])
        label = _cell(row, indexes["label"])
        if not text or not label:
            if any(_cell(row, index) for index in range(len(row))):
                skipped += 1  # a row with content but no text or label; wholly empty rows are not worth counting
            continue
        texts.append(text)
        labels.append(label)
    if not texts:
        raise LabelledDataError(f"{path}: 没有可用的标注数据 (no rows with both a text and a label)")
    return LabelledData(path, texts, labels, skipped, encoding)


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
    """macro_f1, accuracy (on the held-out split), n_train, n_test, n_total"""
    pipeline: Any = field(repr=False)
    report: str = field(default="", repr=False)
    """the per-class precision/recall/F1 table of the held-out split (sklearn's classification_report)"""
    sklearn_version: str = ""

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
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
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


C = 20.0
"""Inverse regularisation strength of the logistic regression. With some forty classes a weaker prior (5) spreads the
probability so thin that a correct answer rarely reaches ``min_probability`` (0.6): on the sample corpus's held-out
rows C=5 gives a median top probability of 0.50 (30 % of rows ≥ 0.6), C=20 gives 0.77 (80 %), at the same macro F1."""


def _pipeline(seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=1)),
            ("classifier", LogisticRegression(max_iter=2000, C=C, class_weight="balanced", random_state=seed)),
        ]
    )


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
    test_size: float = TEST_SIZE,
    seed: int = SEED,
    now: datetime | None = None,
) -> TrainedModel:
    """Fit on a stratified training split, measure on the held-out rows, then refit on every row for the saved
    model (the figures describe the method on unseen rows; the model learns from all of them)."""
    import sklearn
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    if len(set(labels)) < 2:
        raise ValueError(f"need at least two different labels to train a classifier (至少需要两个类别), got {set(labels)}")
    texts, labels = list(texts), list(labels)
    train_rows, test_rows, note = _split(labels, test_size, seed)
    evaluate_rows = test_rows or train_rows
    pipeline = _pipeline(seed).fit([texts[i] for i in train_rows], [labels[i] for i in train_rows])
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
        pipeline = _pipeline(seed).fit(texts, labels)
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
