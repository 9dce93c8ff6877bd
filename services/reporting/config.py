"""Reporting's own configuration, ``reporting.yaml`` in the configuration folder (versioned, validated at start-up
with errors that name the file, the entry and the problem, like the district's files)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from civicbus.district import Strict, load_config_file
from civicbus.logs import get_logger

log = get_logger(__name__)
REPORTING_FILE = "reporting.yaml"


class SatisfactionWeights(Strict):
    """How much each callback verdict counts in 满意率. the product's definition (docs/product.md) (满意 or 基本满意 ÷ callbacks with a
    verdict) is 1, 1, 0; many assessments count 基本满意 as 0.8."""

    satisfied: float = Field(default=1.0, ge=0, le=1)  # 满意
    basically_satisfied: float = Field(default=1.0, ge=0, le=1)  # 基本满意
    dissatisfied: float = Field(default=0.0, ge=0, le=1)  # 不满意


class ReportingFile(Strict):
    version: int
    satisfaction_weights: SatisfactionWeights = SatisfactionWeights()


def load_reporting_config(folder: Path) -> ReportingFile:
    """The folder's reporting.yaml; without one, the product's definition (docs/product.md)s (said in the log)."""
    path = Path(folder) / REPORTING_FILE
    if not path.is_file():
        log.info("no reporting.yaml; using the default figure definitions", folder=str(folder))
        return ReportingFile(version=1)
    return load_config_file(ReportingFile, path)
