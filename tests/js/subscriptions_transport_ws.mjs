// subscriptions-transport-ws, the legacy graphql-ws protocol Apollo once shipped: live task events.
//
// Settings: GRAPHQL_URL, TOKEN, TASK_ID (a queued task: its only event is CREATED, sequence 1).
// Checkpoint: "subscribed" (write 2 events).
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';

import { TASK_EVENTS, taskEventsAfter } from './lib/documents.mjs';
import { Inbox, bearer, checkpoint, run, setting, websocketUrl } from './lib/harness.mjs';

run(async () => {
  const client = new SubscriptionClient(
    websocketUrl(),
    { connectionParams: { Authorization: bearer() }, reconnect: false },
    WebSocket,
  );
  const inbox = new Inbox();
  client.onError(inbox.fail);
  client
    .request({ query: TASK_EVENTS, variables: taskEventsAfter(setting('TASK_ID'), 0) })
    .subscribe({ next: inbox.push, error: inbox.fail });

  const stored = await inbox.take(1, 'stored events');
  await checkpoint('subscribed');
  const live = await inbox.take(2, 'live events');
  const extra = await inbox.extra();
  client.close();
  return { sequences: [...stored, ...live, ...extra].map((event) => event.sequence) };
});
