"""What one user may hold of ocr_svc at a time, so that no user can take every worker and
queue slot: at most N calls in flight (`OCR_MAX_CALLS_PER_USER`), and at most P pages in the
documents of those calls (`OCR_MAX_PAGES_PER_USER`).

Why pages, and why this way: a call is no longer one image. The workers are already shared
page by page (the pipeline takes a worker slot per page, so a waiting caller's page runs
between two pages of a long PDF), which keeps a 500-page PDF from starving the others of
time; what is left for this limit is the backlog one user may pile up. Counting pages in
the documents a user is reading (known once a document is opened, before its first page is
read) bounds that backlog by work, not by requests: a user may read a few long documents or
many short ones at once, never more than P pages' worth. A call that would pass the budget
is refused like the N+1st call, RESOURCE_EXHAUSTED with a Retry-After, before any page is
read.

The counts are per process, like the workers and the queue they protect: with
`OCR_PROCESSES` > 1 or several replicas, a user may hold up to N calls and P pages in each
(clients reach one process per connection, and the gateway keeps one connection per
worker).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class TooManyCalls(Exception):
    """The user already has the most calls in flight that one user may have."""

    def __init__(self, limit: int, retry_after_seconds: int, message: str | None = None) -> None:
        super().__init__(
            message
            or f"you already have {limit} OCR call{'s' if limit != 1 else ''} in progress; "
            "wait for one to finish"
        )
        self.retry_after_seconds = retry_after_seconds


class TooManyPages(TooManyCalls):
    """The user's documents in flight would hold more pages than one user may have."""


class CallsPerUser:
    """Counts each user's calls and pages in flight. `limit` (calls) and `page_limit` 0
    mean no limit. One per event loop."""

    def __init__(self, limit: int, *, page_limit: int = 0, retry_after_seconds: int = 2) -> None:
        self.limit = limit
        self.page_limit = page_limit
        self.retry_after_seconds = retry_after_seconds
        self._in_flight: Counter[str] = Counter()
        self._pages: Counter[str] = Counter()

    def in_flight(self, user_id: str) -> int:
        return self._in_flight[user_id]

    def pages_in_flight(self, user_id: str) -> int:
        return self._pages[user_id]

    @contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        """A slot of `user_id`'s for the duration of the block; raises `TooManyCalls`."""
        if self.limit and self._in_flight[user_id] >= self.limit:
            raise TooManyCalls(self.limit, self.retry_after_seconds)
        self._in_flight[user_id] += 1
        try:
            yield
        finally:
            self._in_flight[user_id] -= 1
            if not self._in_flight[user_id]:
                del self._in_flight[user_id]

    @contextmanager
    def hold_pages(self, user_id: str, pages: int) -> Iterator[None]:
        """`pages` of `user_id`'s page budget for the duration of the block; raises
        `TooManyPages` when they do not fit beside the pages the user already holds (a
        document longer than the whole budget fits only when the user holds no other)."""
        held = self._pages[user_id]
        if self.page_limit and held and held + pages > self.page_limit:
            raise TooManyPages(
                self.page_limit,
                self.retry_after_seconds,
                f"you already have {held} pages in progress; with these {pages} that would pass the "
                f"{self.page_limit} pages one user may have in progress; wait for a document to finish",
            )
        self._pages[user_id] += pages
        try:
            yield
        finally:
            self._pages[user_id] -= pages
            if not self._pages[user_id]:
                del self._pages[user_id]
