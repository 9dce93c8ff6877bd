from __future__ import annotations

import pytest

from civicbus.district import District, load_district
from civicbus.settings import DEFAULT_CONFIG_DIR


@pytest.fixture(scope="session")
def district() -> District:
    return load_district(DEFAULT_CONFIG_DIR)
