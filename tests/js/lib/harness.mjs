// What every client script shares: its settings from the environment, checkpoints the
// pytest side answers, an inbox of results, and one JSON line per outcome on stdout.
//
// stdout carries one JSON object a line: {"checkpoint": name, ...} where the script waits
// for a line on stdin (the test acts, then answers), and last {"result": ...} or {"error": ...}.
import { createInterface } from 'node:readline';

const SCRIPT_TIMEOUT_MS = Number(process.env.SCRIPT_TIMEOUT_MS ?? 30_000);
const QUIET_MS = 300;

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
let waitingFor = 'start';

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function fail(error) {
  emit({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error), waitingFor });
  process.exit(1);
}

export function setting(name) {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

export const graphqlUrl = () => setting('GRAPHQL_URL');
export const websocketUrl = () => graphqlUrl().replace(/^http/, 'ws');
export const bearer = () => `Bearer ${setting('TOKEN')}`;

/** Tell the test where the script is, and wait until the test has done its part: its answer line. */
export async function checkpoint(name, detail = {}) {
  waitingFor = `the test to answer checkpoint ${name}`;
  emit({ checkpoint: name, ...detail });
  const { done, value } = await stdin.next();
  if (done) fail(`stdin closed at checkpoint ${name}`);
  return value;
}

/** Run the flow under one deadline; its return value is the result. */
export function run(flow) {
  setTimeout(() => fail(`timed out after ${SCRIPT_TIMEOUT_MS} ms`), SCRIPT_TIMEOUT_MS);
  flow().then((result) => {
    emit({ result });
    process.exit(0);
  }, fail);
}

/** GraphQL results pushed by a client's callbacks; the flow takes each one's single field in order. */
export class Inbox {
  #items = [];
  #error = null;
  #wake = () => {};

  push = (result) => {
    if (result.errors?.length) return this.fail(new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`));
    this.#items.push(Object.values(result.data)[0]);
    this.#wake();
  };

  fail = (error) => {
    this.#error = error instanceof Error ? error : new Error(JSON.stringify(error));
    this.#wake();
  };

  /** The next `count` items; rejects with the client's error if it reports one first. */
  async take(count, what = 'results') {
    waitingFor = `${count} ${what} (${this.#items.length} so far)`;
    while (this.#items.length < count) {
      if (this.#error) throw this.#error;
      await new Promise((resolve) => { this.#wake = resolve; });
    }
    waitingFor = `the step after ${count} ${what}`;
    return this.#items.splice(0, count);
  }

  /** The client's error, once it reports one. */
  async failure() {
    waitingFor = 'the client to report the connection lost';
    while (!this.#error) await new Promise((resolve) => { this.#wake = resolve; });
    const error = this.#error;
    this.#error = null;
    return error;
  }

  /** Whatever else arrives within a short quiet period: a duplicate or a stray result. */
  async extra() {
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    return this.#items.splice(0);
  }
}

// The sequences of a stream that one stored and two live events reach, then (after the "received" checkpoint,
// while the test drops the connection) two missed ones, then one more live after "resumed": the choreography
// tests/test_js_clients.py's events_across_a_dropped_connection drives from its side.
export async function eventsAcrossADroppedConnection(inbox) {
  const stored = await inbox.take(1, 'stored events');
  await checkpoint('subscribed');
  const live = await inbox.take(2, 'live events');
  await checkpoint('received');
  const missed = await inbox.take(2, 'missed events after the automatic reconnect');
  await checkpoint('resumed');
  const liveAgain = await inbox.take(1, 'live events after the resume');
  const extra = await inbox.extra();
  return [...stored, ...live, ...missed, ...liveAgain, ...extra].map((event) => event.sequence);
}
