"""``civicbus classifier …``: train the learned classifier from labelled work orders and the dispatchers'
corrections, export those corrections, write the sample corpus, try it.

.. code-block:: bash

    civicbus classifier train 工单导出.xlsx --text-column 内容 --label-column 类别 --folds 5
    civicbus classifier corrections -o corrections.csv
    civicbus classifier train 工单导出.xlsx --corrections corrections.csv --mapping 类别对照.yaml
    civicbus classifier sample-corpus
    civicbus classifier predict "小区管理公司不作为，楼道灯坏了也不修"
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from civicbus.terminal import console, err_console, fail

from .learned import DEFAULT_MODEL_PATH

if TYPE_CHECKING:
    from civicbus.district import District

classifier_app = typer.Typer(
    help="The learned text classifier (学习分类): train from labelled work orders, try it.", no_args_is_help=True
)


def _config_dir(config: Optional[Path]) -> Path:
    from civicbus.settings import ServiceSettings

    return Path(config or ServiceSettings().config_dir)


@classifier_app.command("train")
def train_command(
    files: Annotated[
        list[Path], typer.Argument(help="labelled work orders: .csv (UTF-8 or GBK) or .xlsx (first sheet); several "
                                         "files are trained on together")
    ],
    text_column: Annotated[str, typer.Option(help="the column with the work order's text")] = "内容",
    label_column: Annotated[
        str, typer.Option(help="the column with the category: a code, a name path (生态环保/扬尘) or a name")
    ] = "类别",
    corrections: Annotated[
        Optional[list[Path]],
        typer.Option("--corrections", help="an export of `civicbus classifier corrections` (repeatable); a "
                                           "correction replaces historical rows with the same text"),
    ] = None,
    mapping: Annotated[
        Optional[Path], typer.Option(help="their labels → categories: YAML (标签: 类别) or CSV/xlsx (two columns)")
    ] = None,
    folds: Annotated[
        int, typer.Option(help="also report K-fold stratified cross-validation (e.g. 5); 0: held-out split only")
    ] = 0,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="model file; default <config>/models/classifier.joblib")
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="configuration folder; default CIVICBUS_CONFIG_DIR")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the summary line")] = False,
) -> None:
    """Train on the files, print precision/recall/F1 per class on a held-out split (and K-fold cross-validation),
    save a versioned model. Rows without a text or with a label the category tree does not know are skipped and
    listed."""
    from civicbus.district import DistrictConfigError, load_district

    from .learned import (
        CORRECTION_COLUMNS,
        LabelledDataError,
        LabelResolver,
        combine,
        cross_validate,
        district_words,
        normalise_labels,
        read_labelled,
        read_mapping,
        skipped_report,
        train,
    )

    try:
        district = load_district(_config_dir(config))
        resolver = LabelResolver(district, read_mapping(mapping) if mapping else None)
        history = [normalise_labels(read_labelled(file, text_column, label_column), resolver) for file in files]
        corrected = [normalise_labels(read_labelled(file, CORRECTION_COLUMNS[1], CORRECTION_COLUMNS[2]), resolver)
                     for file in corrections or []]
    except (DistrictConfigError, LabelledDataError) as error:
        fail(str(error))
    skipped = [row for data in (*history, *corrected) for row in data.skipped_rows]
    for line in skipped_report(skipped):
        err_console.print(f"[yellow]skipped 跳过[/] {escape(line)}", highlight=False)
    texts, labels, replaced = combine(history, corrected)
    if len(set(labels)) < 2:
        fail(f"{len(texts)} usable rows with {len(set(labels))} categor(ies) after skipping {len(skipped)} rows: "
              f"need at least two categories to train (至少需要两个类别); known codes are listed in "
              f"{district.folder / 'categories.yaml'}")
    words = district_words(district)
    if folds:
        try:
            validation = cross_validate(texts, labels, folds, words=words)
        except ValueError as error:
            fail(str(error))
        if not quiet:
            _print_report(validation.report, district, f"{folds}-fold cross-validation {folds} 折交叉验证")
            if validation.note:
                console.print(validation.note, markup=False, highlight=False)
        console.print(validation.summary(), markup=False, highlight=False)
    started = time.monotonic()
    try:
        model = train(texts, labels, words=words)
    except ValueError as error:
        fail(f"{', '.join(map(str, files))}: {error}")
    seconds = time.monotonic() - started
    target = output or district.folder / DEFAULT_MODEL_PATH
    model.save(target)
    metrics = model.metrics
    taken = f", {sum(len(data.texts) for data in corrected)} corrections (纠正样本, replacing {replaced})" \
        if corrections else ""
    summary = (
        f"[green]✓[/] model {model.version} → {target}: {len(model.labels)} classes, {metrics['n_total']} rows"
        f"{taken} (skipped {len(skipped)}), held-out {metrics['n_test']}: macro F1 {metrics['macro_f1']:.3f}, "
        f"accuracy {metrics['accuracy']:.3f}; trained in {seconds:.1f} s"
    )
    if quiet:
        console.print(summary, highlight=False)
        return
    _print_report(model.report, district, "Held-out evaluation 留出集评估")
    console.print(summary, highlight=False)


def _print_report(report: str, district: District, title: str) -> None:
    """sklearn's classification report as a table with the categories' names, then its averages."""
    table = Table("类别 class", "名称", "precision", "recall", "F1", "support", title=title)
    for line in report.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] in district.category_by_code:
            code, *figures = parts
            table.add_row(code, district.category_path(code), *figures)
    console.print(table)
    console.print(report.split("\n\n", 2)[-1].rstrip(), markup=False, highlight=False)  # accuracy, averages


@classifier_app.command("corrections")
def corrections_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file to write")] = Path("corrections.csv"),
    since: Annotated[
        Optional[datetime], typer.Option(help="only decisions at or after this time (e.g. 2026-11-01)")
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="configuration folder; default CIVICBUS_CONFIG_DIR")] = None,
) -> None:
    """Export the dispatchers' decisions (人工派单, 改派 to another category) as labelled work orders, with the
    original text, for `civicbus classifier train --corrections`."""
    from civicbus.district import DistrictConfigError, load_district
    from civicbus.mongo import create_mongo, database
    from civicbus.settings import ServiceSettings

    from .learned import CORRECTIONS_COLLECTION, correction_rows, write_corrections

    try:
        district = load_district(_config_dir(config))
    except DistrictConfigError as error:
        fail(str(error))
    if since is not None and since.tzinfo is None:
        from zoneinfo import ZoneInfo

        since = since.replace(tzinfo=ZoneInfo(district.timezone))  # the district's time, as people write it

    async def read() -> list[dict[str, Any]]:
        settings = ServiceSettings()
        client = create_mongo(settings)
        try:
            query = {} if since is None else {"decided_at": {"$gte": since}}
            return await database(client, settings)[CORRECTIONS_COLLECTION].find(query).to_list(None)
        finally:
            await client.close()

    try:
        documents = asyncio.run(read())
    except Exception as error:  # the store away: say so, not a traceback
        fail(f"cannot read {CORRECTIONS_COLLECTION} (无法读取纠正样本): {type(error).__name__}: {error}")
    rows = correction_rows(documents, district)
    write_corrections(rows, output)
    open_rows = sum(1 for row in rows if not row[2])
    console.print(
        f"[green]✓[/] wrote {len(rows)} corrections (纠正样本) to {output}"
        + (f"; {open_rows} without a category: their unit leads several, choose one in 类别 (类别待定，请从候选类别中选填)"
           if open_rows else ""),
        highlight=False,
    )


@classifier_app.command("sample-corpus")
def sample_corpus_command(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="CSV file to write")] = None,
    config: Annotated[Optional[Path], typer.Option(help="configuration folder; default CIVICBUS_CONFIG_DIR")] = None,
) -> None:
    """Write the labelled sample corpus (deterministic) that the demo's model is trained from."""
    from civicbus.district import DistrictConfigError

    from .sample_corpus import CORPUS_FILE, write_sample_corpus

    folder = _config_dir(config)
    target = output or folder / CORPUS_FILE
    try:
        rows = write_sample_corpus(target, folder)
    except DistrictConfigError as error:
        fail(str(error))
    console.print(f"[green]✓[/] wrote {rows} labelled work orders to {target}", highlight=False)


@classifier_app.command("predict")
def predict_command(
    text: Annotated[str, typer.Argument(help="a work order's text (Chinese)")],
    model: Annotated[Optional[Path], typer.Option(help="model file; default <config>/models/classifier.joblib")] = None,
    config: Annotated[Optional[Path], typer.Option(help="configuration folder; default CIVICBUS_CONFIG_DIR")] = None,
) -> None:
    """The model's answer for a text: label, probability and the runner-up."""
    from civicbus.district import DistrictConfigError, load_district

    from .learned import ModelFileError, TrainedModel, model_path

    try:
        district = load_district(_config_dir(config))
        path = model or model_path(district) or district.folder / DEFAULT_MODEL_PATH
        trained = TrainedModel.load(path)
    except (DistrictConfigError, ModelFileError) as error:
        fail(str(error))
    prediction = trained.predict(text)
    name = district.category_path
    console.print(f"[bold]类别 label[/]     {name(prediction.label)} ({prediction.label}) — probability "
                  f"{prediction.probability:.2f}", highlight=False)
    if prediction.runner_up:
        console.print(f"[bold]其次 runner-up[/] {name(prediction.runner_up)} ({prediction.runner_up}) — probability "
                      f"{prediction.runner_up_probability:.2f}", highlight=False)
    console.print(f"[dim]model {trained.version} ({path})[/]", highlight=False)
