// What a README snippet leaves to its page, in Node: the address, the token and `handle`, which
// collects each event. The flow: the first live event, a checkpoint answered with the last position
// the test wrote (after a restart or a move to another worker), every event up to it, and whatever
// else arrives (a duplicate would).
import WebSocket from 'ws';

import { Inbox, checkpoint, graphqlUrl, run, setting } from '../lib/harness.mjs';

// Node 20 has no WebSocket of its own; a browser's is where graphql-ws looks for one.
globalThis.WebSocket ??= WebSocket;

export const API = graphqlUrl();
export const token = setting('TOKEN');
const inbox = new Inbox();
export const handle = (event) => inbox.push({ data: { event } });

run(async () => {
  const received = await inbox.take(1, 'the first live event');
  const last = BigInt(await checkpoint('live', { first: received[0].position }));
  while (BigInt(received.at(-1).position) < last) received.push(...(await inbox.take(1, `events up to ${last}`)));
  received.push(...(await inbox.extra()));
  return { positions: received.map((event) => Number(event.position)) };
});
