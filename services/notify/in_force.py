"""The configuration notify works with right now — recipients and their channels, quiet hours, reminders,
escalation, the daily digest — and the message renderer built on it, as one object that a change of the district's
files replaces whole.

At start a broken district.yaml or notify.yaml stops notify; afterwards ``civicbus.service.watch_district`` calls
:meth:`InForce.use` (in a worker thread) with each district that loads, as it does for triage's rules and
reporting's figures. ``use`` loads notify.yaml and the channels on it and raises if they do not validate, so the
configuration in force stays and the watch logs why. The handler, the delivery pipeline and the timers read
``current`` where they need it: the next batch or tick works with the new configuration, without a restart, and
the district, notify's files and the renderer they read always belong together (one assignment swaps them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from civicbus.district import District

from .config import NotifyConfig, load_notify_config
from .messages import MessageRenderer


@dataclass(frozen=True)
class Configuration:
    district: District
    notify: NotifyConfig
    renderer: MessageRenderer
    zone: ZoneInfo  # the district's: quiet hours and the daily digest's hour are its wall-clock times


class InForce:
    def __init__(self, district: District, public_base_url: str) -> None:
        self._public_base_url = public_base_url
        self.current = self._build(district)

    def use(self, district: District) -> None:
        """Load notify's files beside ``district`` and build on them, then swap them in with one assignment."""
        self.current = self._build(district)

    def _build(self, district: District) -> Configuration:
        return Configuration(district, load_notify_config(district),
                             MessageRenderer(district, self._public_base_url), ZoneInfo(district.timezone))
