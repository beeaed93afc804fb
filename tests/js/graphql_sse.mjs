// graphql-sse's client (distinct connections mode): live task events over Server-Sent Events,
// a dropped connection, then a resume with afterSequence.
//
// Why afterSequence and not Last-Event-ID: this client's parser drops the SSE `id:` field and its
// own retry re-sends the request unchanged, so it cannot resume where it stopped by itself.
// Its retries are off here so the drop reaches the flow, which resubscribes after the last
// sequence it received.
//
// Settings: GRAPHQL_URL, TOKEN, TASK_ID (a queued task: its only event is CREATED, sequence 1).
// Checkpoints: "subscribed" (write 2 events), "received" (drop the connection),
// "dropped" (write 2 events while away, then let connections through), "resumed" (write 1 more).
import { createClient } from 'graphql-sse';

import { TASK_EVENTS, taskEventsAfter } from './lib/documents.mjs';
import { Inbox, bearer, checkpoint, graphqlUrl, run, setting } from './lib/harness.mjs';

const taskId = setting('TASK_ID');

function subscribe(client, after) {
  const inbox = new Inbox();
  client.subscribe(
    { query: TASK_EVENTS, variables: taskEventsAfter(taskId, after) },
    { next: inbox.push, error: inbox.fail, complete: () => inbox.fail(new Error('completed unasked')) },
  );
  return inbox;
}

const sequences = (events) => events.map((event) => event.sequence);

run(async () => {
  const client = createClient({ url: graphqlUrl(), headers: { Authorization: bearer() }, retryAttempts: 0 });

  const before = subscribe(client, 0);
  const stored = await before.take(1, 'stored events');
  await checkpoint('subscribed');
  const live = await before.take(2, 'live events');
  await checkpoint('received');
  const dropped = await before.failure();
  const last = live.at(-1).sequence;
  await checkpoint('dropped', { last, reason: dropped.message });

  const after = subscribe(client, last);
  const missed = await after.take(2, 'missed events');
  await checkpoint('resumed');
  const liveAgain = await after.take(1, 'live events after the resume');
  const extra = await after.extra();
  client.dispose();
  return {
    firstConnection: sequences([...stored, ...live]),
    secondConnection: sequences([...missed, ...liveAgain, ...extra]),
    dropped: dropped.message,
  };
});
