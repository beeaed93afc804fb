// The eventsource package as the browser's own EventSource on a page of another origin: it can send no
// Authorization header, so each connection is signed in by a stream ticket in its URL, minted just before
// (createStreamTicket, with the token, which never enters a URL). After a drop it reconnects by itself,
// with a new ticket, and resumes with Last-Event-ID.
//
// Settings: GRAPHQL_URL, TOKEN, TASK_ID (a queued task: its only event is CREATED, sequence 1), ORIGIN (the
// page's origin, sent as a browser sends it). Checkpoints as eventsource.mjs: "subscribed", "received", "resumed".
import { EventSource } from 'eventsource';

import { TASK_EVENTS, taskEventsAfter } from './lib/documents.mjs';
import {
  Inbox, bearer, eventsAcrossADroppedConnection, graphqlUrl, run, setting,
} from './lib/harness.mjs';

const CREATE_TICKET = 'mutation { createStreamTicket { ticket } }';

async function mintTicket(origin) {
  const response = await fetch(graphqlUrl(), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: bearer(), origin },
    body: JSON.stringify({ query: CREATE_TICKET }),
  });
  const body = await response.json();
  if (!body.data?.createStreamTicket) throw new Error(`no ticket: ${JSON.stringify(body)}`);
  return body.data.createStreamTicket.ticket;
}

run(async () => {
  const origin = setting('ORIGIN');
  const url = new URL(graphqlUrl());
  url.searchParams.set('query', TASK_EVENTS);
  url.searchParams.set('variables', JSON.stringify(taskEventsAfter(setting('TASK_ID'), 0)));

  const requests = [];
  const source = new EventSource(url, {
    fetch: async (input, init) => {
      const signed = new URL(input);
      signed.searchParams.set('ticket', await mintTicket(origin));
      const response = await fetch(signed, { ...init, headers: { ...init.headers, Origin: origin } });
      requests.push({
        lastEventId: init.headers['Last-Event-ID'] ?? null,
        status: response.status,
        sentAuthorization: Object.keys(init.headers).some((name) => name.toLowerCase() === 'authorization'),
        allowOrigin: response.headers.get('access-control-allow-origin'),
        exposed: response.headers.get('access-control-expose-headers'),
      });
      return response;
    },
  });
  const inbox = new Inbox();
  const eventIds = [];
  source.addEventListener('next', (event) => {
    eventIds.push(event.lastEventId);
    inbox.push(JSON.parse(event.data));
  });
  source.addEventListener('complete', () => inbox.fail(new Error('completed unasked')));
  source.addEventListener('error', (event) => {
    if (source.readyState === EventSource.CLOSED) inbox.fail(new Error(`EventSource gave up: ${event.message}`));
  });

  const sequences = await eventsAcrossADroppedConnection(inbox);
  source.close();
  return {
    sequences,
    eventIds,
    requests,
  };
});
