"""The event broker: routing, bounded inboxes, publish-after-commit, and a listener that survives a lost connection."""

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.engine import Database
from db.enums import EventType
from db.events import EventNotice, append_event
from db.settings import Settings
from graph.live.broker import Broker, Inbox, PostgresBroker, create_broker
from tests.factories import make_task, make_user

TIMEOUT = 10.0


def notice(task_id: uuid.UUID | None = None, sequence: int = 1, owner_id: uuid.UUID | None = None) -> EventNotice:
    return EventNotice(task_id or uuid.uuid4(), sequence, owner_id or uuid.uuid4(), position=sequence)


@pytest.fixture
async def broker(db: Database, settings: Settings) -> AsyncIterator[Broker]:
    chosen = create_broker(db, settings)
    await chosen.start()
    yield chosen
    await chosen.stop()


async def test_an_inbox_hands_over_everything_queued_at_once() -> None:
    # given
    inbox = Inbox(maxsize=4)
    first, second = notice(sequence=1), notice(sequence=2)
    inbox.offer(first)
    inbox.offer(second)

    # when
    batch = await inbox.next_batch()

    # then
    assert batch == ([first, second], False)


async def test_a_full_inbox_drops_the_notice_and_marks_its_subscriber_behind() -> None:
    # given
    inbox = Inbox(maxsize=1)
    inbox.offer(notice(sequence=1))

    # when
    inbox.offer(notice(sequence=2))

    # then
    notices, behind = await inbox.next_batch()
    assert ([n.sequence for n in notices], behind) == ([1], True)


async def test_a_resync_wakes_a_subscriber_waiting_on_an_empty_inbox() -> None:
    # given
    inbox = Inbox()
    waiting = asyncio.create_task(inbox.next_batch())
    await asyncio.sleep(0)

    # when
    inbox.resync()

    # then
    assert await asyncio.wait_for(waiting, TIMEOUT) == ([], True)


async def test_notices_reach_the_task_the_owner_and_everything_subscribers_only() -> None:
    # given
    broker = Broker()
    task_id, owner_id = uuid.uuid4(), uuid.uuid4()
    with broker.subscribe(task_id=task_id) as by_task, broker.subscribe(owner_id=owner_id) as by_owner, \
            broker.subscribe(task_id=uuid.uuid4()) as other_task, broker.subscribe() as everything:
        # when
        broker.publish([notice(task_id, 2, owner_id)])

        # then
        for inbox in (by_task, by_owner, everything):
            assert [n.sequence for n in (await inbox.next_batch())[0]] == [2]
        assert len(other_task) == 0


def test_leaving_a_subscription_forgets_its_inbox() -> None:
    broker = Broker()
    with broker.subscribe(task_id=uuid.uuid4()), broker.subscribe(owner_id=uuid.uuid4()), broker.subscribe():
        assert broker.subscriber_count == 3
    assert broker.subscriber_count == 0


async def test_subscribers_asking_for_the_same_read_at_once_share_one() -> None:
    # given
    broker, calls, release = Broker(), [], asyncio.Event()

    async def read() -> list[int]:
        calls.append(1)
        await release.wait()
        return [1, 2]

    # when
    waiting = [asyncio.ensure_future(broker.shared_read("key", read)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiting)

    # then
    assert len(calls) == 1
    assert results == [[1, 2]] * 50


async def test_a_subscriber_leaving_does_not_cancel_the_read_others_share() -> None:
    # given
    broker, release = Broker(), asyncio.Event()

    async def read() -> str:
        await release.wait()
        return "rows"

    leaving = asyncio.ensure_future(broker.shared_read("key", read))
    staying = asyncio.ensure_future(broker.shared_read("key", read))
    await asyncio.sleep(0)

    # when
    leaving.cancel()
    release.set()

    # then
    assert await staying == "rows"
    assert leaving.cancelled()


async def test_a_finished_read_is_not_served_again() -> None:
    broker, calls = Broker(), []

    async def read() -> int:
        calls.append(1)
        return len(calls)

    assert await broker.shared_read("key", read) == 1
    assert await broker.shared_read("key", read) == 2


async def test_events_are_published_only_once_their_transaction_commits(db: Database, broker: Broker) -> None:
    # given: a task whose CREATED notice has been heard (LISTEN delivers it a moment after its commit)
    with broker.subscribe() as inbox:
        async with db.transaction() as session:
            owner = await make_user(session)
            task_id = (await make_task(session, owner)).id
        created, _ = await asyncio.wait_for(inbox.next_batch(), TIMEOUT)
        assert [notice.sequence for notice in created] == [1]

        # when
        async with db.transaction() as session:
            await append_event(session, task_id, EventType.PROGRESS)
            await asyncio.sleep(0.1)
            heard_before_commit = len(inbox) > 0
        notices, _ = await asyncio.wait_for(inbox.next_batch(), TIMEOUT)

    # then
    assert not heard_before_commit
    assert notices == [EventNotice(task_id, 2, owner.id, position=2)]


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_lost_listener_connection_is_reestablished_and_subscribers_told_to_reread(
    db: Database, settings: Settings
) -> None:
    # given
    broker = PostgresBroker.from_settings(settings)
    await broker.start()
    try:
        with broker.subscribe() as inbox:
            assert broker._connection is not None
            pid = broker._connection.get_server_pid()

            # when: the server kills the listener's backend
            killer = await asyncpg.connect(broker.dsn)
            await killer.execute("SELECT pg_terminate_backend($1)", pid)
            await killer.close()

            # then: the subscriber is told to re-read the log (at once, and again once the listener is back)
            assert (await asyncio.wait_for(inbox.next_batch(), TIMEOUT))[1] is True
            async with asyncio.timeout(TIMEOUT):
                while broker.reconnects < 1:
                    await asyncio.sleep(0.01)
            # and live notices flow again
            async with db.transaction() as session:
                owner = await make_user(session)
                task_id = (await make_task(session, owner)).id
            notices: list[EventNotice] = []
            async with asyncio.timeout(TIMEOUT):
                while not notices:  # past the re-read the reconnection asked for, if it is still waiting
                    notices, _ = await inbox.next_batch()
            assert notices == [EventNotice(task_id, 1, owner.id, position=1)]
            assert broker.reconnects == 1
    finally:
        await broker.stop()
