// The eventsource package, the browser's EventSource for Node: a GET subscription over
// Server-Sent Events that reconnects by itself after a drop, sending Last-Event-ID.
// The bearer token travels through its fetch option, the documented way to add headers.
//
// Settings: GRAPHQL_URL, TOKEN, TASK_ID (a queued task: its only event is CREATED, sequence 1).
// Checkpoints: "subscribed" (write 2 events), "received" (drop the connection, write 2 events
// while the client is away, then let it reconnect), "resumed" (write 1 more).
import { EventSource } from 'eventsource';

import { TASK_EVENTS, taskEventsAfter } from './lib/documents.mjs';
import {
  Inbox, bearer, eventsAcrossADroppedConnection, graphqlUrl, run, setting,
} from './lib/harness.mjs';

run(async () => {
  const url = new URL(graphqlUrl());
  url.searchParams.set('query', TASK_EVENTS);
  url.searchParams.set('variables', JSON.stringify(taskEventsAfter(setting('TASK_ID'), 0)));

  const requests = [];
  const source = new EventSource(url, {
    fetch: (input, init) => {
      requests.push({ lastEventId: init.headers['Last-Event-ID'] ?? null });
      return fetch(input, { ...init, headers: { ...init.headers, Authorization: bearer() } });
    },
  });
  const inbox = new Inbox();
  const eventIds = [];
  const errors = [];
  source.addEventListener('next', (event) => {
    eventIds.push(event.lastEventId);
    inbox.push(JSON.parse(event.data));
  });
  source.addEventListener('complete', () => inbox.fail(new Error('completed unasked')));
  source.addEventListener('error', (event) => {
    errors.push(event.message ?? 'error');
    if (source.readyState === EventSource.CLOSED) inbox.fail(new Error(`EventSource gave up: ${event.message}`));
  });

  const sequences = await eventsAcrossADroppedConnection(inbox);
  source.close();
  return {
    sequences,
    eventIds,
    requests,
    errors,
  };
});
