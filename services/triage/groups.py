"""Problem groups (同一问题): the open ticket that gathers an alarm storm or repeat complaints, and the *home* of
every ticket — the group it belongs to, or the event that opened it. The home's shard is the Kafka key of all that
touches the ticket (see civicbus.events.shard_of), so one consumer owns a group and its tickets.

A group's key is spelled here and nowhere else: it is the ``_id`` of the group's pointer (``ticket_groups``), the
``home`` of every triaged event on ``civic.commands``, and so the shard in its tickets' numbers."""

from __future__ import annotations

from civicbus.events import Ticket


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


def groups_of(ticket: Ticket) -> list[str]:
    """The groups whose pointer a ticket takes when it is made."""
    groups = []
    if ticket.fingerprint:
        groups.append(alarm_group(ticket.fingerprint))
    if ticket.repeat_key:
        groups.append(repeat_group(ticket.repeat_key))
    return groups
