// README.md's EventSource flow ("Frontend", "The browser's own EventSource"), run as written with the
// eventsource package standing in for the browser's EventSource (no headers, no fetch option): a stream signed
// in by a ticket; after a drop its own reconnect is refused (the ticket is spent), and watch() opens a new one
// with a new ticket, after the last event's id.
//
// Settings: GRAPHQL_URL, TOKEN. Checkpoints: "subscribed" (write 2 events), "received" (drop the connection,
// write 2 events while the client is away, let it back), "resumed" (write 1 more).
import { Client, cacheExchange, fetchExchange } from '@urql/core';
import { EventSource } from 'eventsource';

import { Inbox, bearer, checkpoint, graphqlUrl, run } from './lib/harness.mjs';

const client = new Client({
  url: graphqlUrl(),
  exchanges: [cacheExchange, fetchExchange],
  fetchOptions: () => ({ headers: { Authorization: bearer() } }),
});
const opened = [];

// From the README:
const API = graphqlUrl();
const EVENTS = 'subscription($after: BigInt) { myTaskEvents(afterPosition: $after) { position sequence type taskId } }';
let last = null; // the id of the last event received

async function watch(onEvent) {
  const { data } = await client.mutation('mutation { createStreamTicket { ticket } }', {}).toPromise();
  const url = new URL(API);
  url.searchParams.set('query', EVENTS);
  url.searchParams.set('variables', JSON.stringify({ after: last }));
  url.searchParams.set('ticket', data.createStreamTicket.ticket);
  const source = new EventSource(url);
  source.addEventListener('next', (event) => {
    last = event.lastEventId;
    onEvent(JSON.parse(event.data).data.myTaskEvents);
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(() => watch(onEvent), 1000);
  });
  source.addEventListener('open', () => opened.push({ after: last }));
  return source;
}

run(async () => {
  const inbox = new Inbox();
  await watch((event) => inbox.push({ data: { myTaskEvents: event } }));
  while (opened.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  await checkpoint('subscribed');
  const live = await inbox.take(2, 'live events');
  await checkpoint('received');
  const missed = await inbox.take(2, 'missed events, after a new stream with a new ticket');
  await checkpoint('resumed');
  const liveAgain = await inbox.take(1, 'live events after the resume');
  const extra = await inbox.extra();
  return { sequences: [...live, ...missed, ...liveAgain, ...extra].map((event) => event.sequence), opened };
});
