"""The confirmed publisher's state machine, driven event by event with no broker and no thread:
pipelined confirms, resend after a reconnect, backoff, deadlines, refused declarations and
drain-then-close."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import pika
import pytest

from ocrmesh.platform.amqp import ConfirmOutcome, ConfirmStateMachine, ConnectWaiter, PublishJob


class Failed(Exception):
    """What the fake owner raises for every failure; `kind` says which hook made it."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass
class FakeHooks:
    outcomes: list[ConfirmOutcome] = field(default_factory=list)
    returns: list[int | None] = field(default_factory=list)

    def error(self, reason: str) -> BaseException:
        return Failed("error", reason)

    def nacked(self, routing_key: str) -> BaseException:
        return Failed("nacked", routing_key)

    def unroutable(self, routing_key: str) -> BaseException:
        return Failed("unroutable", routing_key)

    def declaration_refused(self, reply_text: str) -> BaseException:
        return Failed("refused", reply_text)

    def confirmed(self, outcome: ConfirmOutcome) -> None:
        self.outcomes.append(outcome)

    def returned(self, reply_code: int | None) -> None:
        self.returns.append(reply_code)


@dataclass
class FakeLink:
    """Records the machine's commands; a test plays the transport's answers."""

    opens: int = 0
    published: list[str] = field(default_factory=list)  # message ids, in publishing order
    shutdowns: int = 0
    stops: int = 0
    timers: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def open(self) -> None:
        self.opens += 1

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        assert properties.message_id is not None
        self.published.append(properties.message_id)

    def shutdown(self) -> None:
        self.shutdowns += 1

    def stop(self) -> None:
        self.stops += 1

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        self.timers.append((delay, callback))
        return object()

    def fire_timer(self) -> float:
        delay, callback = self.timers.pop(0)
        callback()
        return delay


@dataclass
class Harness:
    link: FakeLink
    hooks: FakeHooks
    machine: ConfirmStateMachine

    def submit(self, message_id: str, deadline: float = 100.0) -> Future[None]:
        job = PublishJob(
            routing_key="work",
            body=message_id.encode(),
            properties=pika.BasicProperties(message_id=message_id),
            deadline=deadline,
        )
        self.machine.enqueue(job)
        return job.future

    def connect(self) -> None:
        """What `connect()` does: a waiter opens the link, which answers ready."""
        connected = self.wait_connected()
        self.machine.on_ready()
        assert connected.result(0) is None

    def wait_connected(self, deadline: float = 100.0) -> Future[None]:
        waiter = ConnectWaiter(deadline=deadline)
        self.machine.add_waiter(waiter)
        return waiter.future


@pytest.fixture
def harness() -> Harness:
    link, hooks = FakeLink(), FakeHooks()
    # No jitter: the longest delay of each backoff step.
    return Harness(link, hooks, ConfirmStateMachine(link, hooks, jitter=lambda: 1.0))


def failure(future: Future[None]) -> Failed:
    error = future.exception(0)
    assert isinstance(error, Failed), error
    return error


def test_events_wait_for_a_connection_then_go_out_together_and_settle_by_delivery_tag(
    harness: Harness,
) -> None:
    futures = [harness.submit(f"m{i}") for i in range(1, 4)]
    assert harness.link.opens == 1  # one connection for all of them
    assert harness.link.published == []

    harness.machine.on_ready()
    assert harness.link.published == ["m1", "m2", "m3"]  # pipelined: no wait for confirms
    harness.machine.on_confirm(2, multiple=True, nack=False)
    assert [f.done() for f in futures] == [True, True, False]
    harness.machine.on_confirm(3, multiple=False, nack=False)
    assert all(f.result(0) is None for f in futures)
    assert harness.hooks.outcomes == ["ack", "ack", "ack"]
    assert harness.machine.connections_opened == 1


def test_a_nack_fails_its_event_with_the_owners_rejection_and_leaves_the_others(harness: Harness) -> None:
    harness.connect()
    first, second = harness.submit("m1"), harness.submit("m2")
    harness.machine.on_confirm(1, multiple=False, nack=True)
    harness.machine.on_confirm(2, multiple=False, nack=False)
    assert failure(first).kind == "nacked"
    assert second.result(0) is None
    assert harness.hooks.outcomes == ["nack", "ack"]


def test_a_returned_event_fails_as_unroutable_when_its_confirm_arrives(harness: Harness) -> None:
    harness.connect()
    future = harness.submit("m1")
    harness.machine.on_return("m1", 312)
    assert not future.done()  # the confirm that follows the return settles it
    harness.machine.on_confirm(1, multiple=False, nack=False)
    assert failure(future).kind == "unroutable"
    assert harness.hooks.returns == [312]
    assert harness.hooks.outcomes == ["returned"]


def test_unconfirmed_events_go_out_again_first_and_in_order_after_a_reconnect(harness: Harness) -> None:
    harness.connect()
    futures = [harness.submit(f"m{i}") for i in range(1, 4)]
    harness.machine.on_confirm(1, multiple=False, nack=False)
    harness.machine.on_connection_closed(ConnectionError("dropped"))
    late = harness.submit("m4")
    assert harness.link.opens == 1  # waiting for the backoff, not reconnecting at once

    harness.link.fire_timer()
    assert harness.link.opens == 2
    harness.machine.on_ready()
    assert harness.link.published == ["m1", "m2", "m3", "m2", "m3", "m4"]
    # Delivery tags start over on the new channel.
    harness.machine.on_confirm(3, multiple=True, nack=False)
    assert all(f.result(0) is None for f in [*futures, late])
    assert harness.machine.connections_opened == 2


def test_a_return_from_the_old_connection_does_not_fail_the_resent_event(harness: Harness) -> None:
    harness.connect()
    future = harness.submit("m1")
    harness.machine.on_return("m1", 312)
    harness.machine.on_connection_closed(ConnectionError("dropped before the confirm"))
    harness.link.fire_timer()
    harness.machine.on_ready()
    harness.machine.on_confirm(1, multiple=False, nack=False)
    assert future.result(0) is None


def test_reconnect_delays_double_up_to_their_cap_and_start_over_once_connected(harness: Harness) -> None:
    harness.submit("m1")
    delays = []
    for _ in range(7):
        harness.machine.on_open_failed(ConnectionRefusedError("refused"))
        delays.append(harness.link.fire_timer())
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])

    harness.machine.on_ready()
    harness.machine.on_connection_closed(ConnectionError("dropped"))
    assert harness.link.fire_timer() == pytest.approx(0.1)


def test_the_backoff_is_jittered_between_half_and_all_of_its_step() -> None:
    link = FakeLink()
    machine = ConfirmStateMachine(link, FakeHooks(), jitter=lambda: 0.0)
    machine.enqueue(PublishJob("work", b"", pika.BasicProperties(message_id="m1"), deadline=100.0))
    machine.on_open_failed(ConnectionRefusedError("refused"))
    assert link.timers[0][0] == pytest.approx(0.05)


def test_nothing_reconnects_while_there_is_nothing_to_send(harness: Harness) -> None:
    harness.connect()
    harness.machine.on_connection_closed(ConnectionError("idle connection dropped"))
    assert harness.link.timers == []
    harness.submit("m1")
    assert harness.link.opens == 2  # at once: there was no failed attempt to back off from


def test_a_refused_declaration_fails_every_waiter_and_event_at_once(harness: Harness) -> None:
    connected = harness.wait_connected()
    events = [harness.submit("m1"), harness.submit("m2")]
    harness.machine.on_channel_closed("PRECONDITION_FAILED - inequivalent arg 'x-queue-type'")
    assert failure(connected).kind == "refused"
    for future in events:
        error = failure(future)
        assert error.kind == "error"
        assert "inequivalent arg" in str(error)


def test_a_channel_closed_for_another_reason_keeps_the_events_for_the_next_connection(
    harness: Harness,
) -> None:
    harness.connect()
    future = harness.submit("m1")
    harness.machine.on_channel_closed(None)
    harness.machine.on_connection_closed(ConnectionError("closed after the channel"))
    harness.link.fire_timer()
    harness.machine.on_ready()
    assert harness.link.published == ["m1", "m1"]
    harness.machine.on_confirm(1, multiple=False, nack=False)
    assert future.result(0) is None


def test_deadlines_fail_waiting_events_as_unreachable_and_sent_ones_as_unconfirmed(harness: Harness) -> None:
    harness.connect()
    sent = harness.submit("m1", deadline=5.0)
    harness.machine.on_connection_closed(ConnectionError("dropped"))
    harness.link.fire_timer()
    harness.machine.on_open_failed(ConnectionRefusedError("refused"))
    waiting = harness.submit("m2", deadline=5.0)
    connected = harness.wait_connected(deadline=5.0)
    later = harness.submit("m3", deadline=50.0)

    harness.machine.check_deadlines(4.9)
    assert not any(f.done() for f in (sent, waiting, connected, later))
    harness.machine.check_deadlines(5.0)
    for future in (sent, waiting, connected):
        assert "broker unreachable: ConnectionRefusedError('refused')" in str(failure(future))
    assert not later.done()


def test_an_event_sent_but_not_confirmed_in_time_fails_as_unconfirmed(harness: Harness) -> None:
    harness.connect()
    future = harness.submit("m1", deadline=5.0)
    harness.machine.check_deadlines(5.0)
    assert str(failure(future)) == "error: no confirm before the deadline"
    harness.machine.on_confirm(1, multiple=False, nack=False)  # too late: changes nothing
    assert harness.hooks.outcomes == []


def test_an_event_cancelled_before_it_was_sent_is_never_sent(harness: Harness) -> None:
    given_up = harness.submit("m1")
    kept = harness.submit("m2")
    assert given_up.cancel()
    harness.machine.on_ready()
    assert harness.link.published == ["m2"]
    harness.machine.on_confirm(1, multiple=False, nack=False)
    assert kept.result(0) is None


def test_a_connect_waiter_resolves_when_connected_or_at_once_when_already(harness: Harness) -> None:
    first = harness.wait_connected()
    assert harness.link.opens == 1
    assert not first.done()
    harness.machine.on_ready()
    assert first.result(0) is None
    assert harness.wait_connected().result(0) is None
    assert harness.link.opens == 1


def test_close_drains_what_is_in_flight_then_shuts_the_link_and_stops(harness: Harness) -> None:
    harness.connect()
    future = harness.submit("m1")
    harness.machine.begin_close()
    assert harness.link.shutdowns == 0  # the event in flight is waited for
    harness.machine.on_confirm(1, multiple=False, nack=False)
    assert future.result(0) is None
    assert harness.link.shutdowns == 1
    harness.machine.on_connection_closed(ConnectionError("closed by us"))
    assert harness.link.stops == 1
    assert harness.link.timers == []


def test_a_closing_publisher_never_opens_a_new_connection(harness: Harness) -> None:
    harness.connect()
    future = harness.submit("m1")
    harness.machine.begin_close()
    harness.machine.on_connection_closed(ConnectionError("dropped while draining"))
    assert "closed" in str(failure(future))
    assert harness.link.opens == 1
    assert harness.link.timers == []
    assert harness.link.shutdowns == 1


def test_closing_while_waiting_to_reconnect_fails_the_waiting_events_at_once(harness: Harness) -> None:
    future = harness.submit("m1")
    harness.machine.on_open_failed(ConnectionRefusedError("refused"))
    harness.machine.begin_close()
    assert "closed" in str(failure(future))
    assert harness.link.shutdowns == 1
    harness.link.fire_timer()  # the timer already armed connects nothing
    assert harness.link.opens == 1


def test_closing_drops_cancelled_events_and_fails_connect_waiters(harness: Harness) -> None:
    cancelled = harness.submit("m1")
    connected = harness.wait_connected()
    assert cancelled.cancel()
    harness.machine.begin_close()
    assert str(failure(connected)) == "error: publisher closed"
    assert harness.link.shutdowns == 1


def test_whatever_is_left_when_the_loop_stops_fails(harness: Harness) -> None:
    harness.connect()
    in_flight = harness.submit("m1")
    harness.machine.on_connection_closed(ConnectionError("dropped"))
    pending, connected = harness.submit("m2"), harness.wait_connected()
    harness.machine.on_stopped()
    for future in (in_flight, pending, connected):
        assert "closed before the event was confirmed" in str(failure(future))
