"""Exceptions raised by the email event plumbing."""

from __future__ import annotations


class EventsError(Exception):
    """Base of every error raised by `ocrmesh.rules.email_events`."""


class PublishError(EventsError):
    """The broker did not confirm an event: nacked, unroutable, unreachable or too slow.

    The event may or may not have reached the queue; publishing it again is safe because
    the notifier deduplicates by `event_id`.
    """


class PublishRejected(PublishError):
    """The broker refused the event (a nack): the work queue is at its length limit
    (`x-max-length` with `reject-publish`) or, on a cluster, has no quorum.

    The event is certainly not queued. It is overload, not a fault of the event: keep it and
    publish it again after a backoff (the auth_svc outbox and ocr_svc's buffer both do).
    """


class TopologyError(EventsError):
    """The broker already has a queue of ours declared with other arguments."""
