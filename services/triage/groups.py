"""Problem groups (同一问题): the open ticket that gathers an alarm storm or repeat complaints, and the *home* of
every ticket — the group it belongs to, or the event that opened it. The home's shard is the Kafka key of all that
touches the ticket (see civicbus.events.shard_of), so one consumer owns a group and its tickets."""

from __future__ import annotations


def alarm_group(fingerprint: str) -> str:
    return f"alarm|{fingerprint}"


def repeat_group(repeat_key: str) -> str:
    return f"repeat|{repeat_key}"


def home_of(event_id: str, fingerprint: str = "", repeat_key: str = "") -> str:
    """Where a ticket lives: its alarm fingerprint's group, its repeat complaints' group, or its own event."""
    if fingerprint:
        return alarm_group(fingerprint)
    if repeat_key:
        return repeat_group(repeat_key)
    return event_id
