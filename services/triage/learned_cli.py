"""``civicbus classifier …``: train the learned classifier from labelled work orders, write the sample corpus, try it.

.. code-block:: bash

    civicbus classifier train 工单导出.xlsx --text-column 内容 --label-column 类别
    civicbus classifier sample-corpus
    civicbus classifier predict "小区管理公司不作为，楼道灯坏了也不修"
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .learned import DEFAULT_MODEL_PATH

classifier_app = typer.Typer(
    help="The learned text classifier (学习分类): train from labelled work orders, try it.", no_args_is_help=True
)
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _config_dir(config: Optional[Path]) -> Path:
    from civicbus.settings import ServiceSettings

    return Path(config or ServiceSettings().config_dir)


@classifier_app.command("train")
def train_command(
    file: Annotated[Path, typer.Argument(help="labelled work orders: .csv (UTF-8 or GBK) or .xlsx (first sheet)")],
    text_column: Annotated[str, typer.Option(help="the column with the work order's text")] = "内容",
    label_column: Annotated[str, typer.Option(help="the column with the category code")] = "类别",
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="model file; default <config>/models/classifier.joblib")
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="configuration folder; default CIVICBUS_CONFIG_DIR")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the summary line")] = False,
) -> None:
    """Train on the file, print precision/recall/F1 per class on a held-out split, save a versioned model."""
    from civicbus.district import DistrictConfigError, load_district

    from .learned import LabelledDataError, check_labels, read_labelled, train

    folder = _config_dir(config)
    try:
        district = load_district(folder)
        data = read_labelled(file, text_column, label_column)
        check_labels(data.labels, district.category_by_code)
    except (DistrictConfigError, LabelledDataError) as error:
        _fail(str(error))
    except ValueError as error:  # unknown labels
        _fail(f"{file}: {error}; known codes are listed in {district.folder / 'categories.yaml'}")
    started = time.monotonic()
    try:
        model = train(data.texts, data.labels)
    except ValueError as error:
        _fail(f"{file}: {error}")
    seconds = time.monotonic() - started
    target = output or district.folder / DEFAULT_MODEL_PATH
    model.save(target)
    metrics = model.metrics
    summary = (
        f"[green]✓[/] model {model.version} → {target}: {len(model.labels)} classes, {metrics['n_total']} rows "
        f"(skipped {data.skipped}), held-out {metrics['n_test']}: macro F1 {metrics['macro_f1']:.3f}, "
        f"accuracy {metrics['accuracy']:.3f}; trained in {seconds:.1f} s"
    )
    if quiet:
        console.print(summary, highlight=False)
        return
    table = Table("类别 class", "名称", "precision", "recall", "F1", "support", title="Held-out evaluation 留出集评估")
    for line in model.report.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] in district.category_by_code:
            code, *figures = parts
            table.add_row(code, district.category_path(code), *figures)
    console.print(table)
    console.print(model.report.split("\n\n", 2)[-1].rstrip(), markup=False, highlight=False)  # accuracy, averages
    console.print(summary, highlight=False)


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
        _fail(str(error))
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
        _fail(str(error))
    prediction = trained.predict(text)
    name = district.category_path
    console.print(f"[bold]类别 label[/]     {name(prediction.label)} ({prediction.label}) — probability "
                  f"{prediction.probability:.2f}", highlight=False)
    if prediction.runner_up:
        console.print(f"[bold]其次 runner-up[/] {name(prediction.runner_up)} ({prediction.runner_up}) — probability "
                      f"{prediction.runner_up_probability:.2f}", highlight=False)
    console.print(f"[dim]model {trained.version} ({path})[/]", highlight=False)
