"""civicbus: the event hub for grassroots governance (基层治理事件中枢) — the shared kernel of its four services."""

__version__ = "0.1.0"
