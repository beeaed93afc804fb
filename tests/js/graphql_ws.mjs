// graphql-ws over ws: live task events, then a disconnect, then a resume with afterSequence.
//
// Settings: GRAPHQL_URL, TOKEN, TASK_ID (a queued task: its only event is CREATED, sequence 1).
// Checkpoints: "subscribed" (write 2 events), "disconnected" (write 2 more while away),
// "resumed" (write 1 more).
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { TASK_EVENTS, taskEventsAfter } from './lib/documents.mjs';
import { Inbox, bearer, checkpoint, run, setting, websocketUrl } from './lib/harness.mjs';

const taskId = setting('TASK_ID');

function connect() {
  return createClient({
    url: websocketUrl(),
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: bearer() },
    retryAttempts: 0,
  });
}

function subscribe(client, after) {
  const inbox = new Inbox();
  client.subscribe(
    { query: TASK_EVENTS, variables: taskEventsAfter(taskId, after) },
    { next: inbox.push, error: inbox.fail, complete: () => {} },
  );
  return inbox;
}

const sequences = (events) => events.map((event) => event.sequence);

run(async () => {
  const first = connect();
  const before = subscribe(first, 0);
  const stored = await before.take(1, 'stored events');
  await checkpoint('subscribed');
  const live = await before.take(2, 'live events');
  await first.dispose();
  const last = live.at(-1).sequence;
  await checkpoint('disconnected', { last });

  const second = connect();
  const after = subscribe(second, last);
  const missed = await after.take(2, 'missed events');
  await checkpoint('resumed');
  const liveAgain = await after.take(1, 'live events after the resume');
  const extra = await after.extra();
  await second.dispose();
  return {
    firstConnection: sequences([...stored, ...live]),
    secondConnection: sequences([...missed, ...liveAgain, ...extra]),
    types: [...stored, ...live, ...missed, ...liveAgain].map((event) => event.type),
  };
});
