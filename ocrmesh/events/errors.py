"""Exceptions raised by the email event plumbing."""

from __future__ import annotations


class EventsError(Exception):
    """Base of every error raised by `ocrmesh.events`."""


class PublishError(EventsError):
    """The broker did not confirm an event: nacked, unroutable, unreachable or too slow.

    The event may or may not have reached the queue; publishing it again is safe because
    the notifier deduplicates by `event_id`.
    """


class TopologyError(EventsError):
    """The broker already has a queue of ours declared with other arguments."""
