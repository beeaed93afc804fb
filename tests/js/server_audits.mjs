// graphql-http's serverAudits: the GraphQL over HTTP spec's MUST, SHOULD and MAY checks
// against the live server, as an anonymous client.
//
// Settings: GRAPHQL_URL.
import { serverAudits } from 'graphql-http';

import { graphqlUrl, run } from './lib/harness.mjs';

const REQUIREMENTS = ['MUST', 'SHOULD', 'MAY'];

run(async () => {
  const counts = Object.fromEntries(REQUIREMENTS.map((requirement) => [requirement, { passed: 0, failed: 0 }]));
  const failures = [];
  for (const audit of serverAudits({ url: graphqlUrl() })) {
    const result = await audit.fn();
    const requirement = audit.name.split(' ', 1)[0];
    counts[requirement][result.status === 'ok' ? 'passed' : 'failed'] += 1;
    if (result.status !== 'ok') failures.push({ id: audit.id, name: audit.name, reason: result.reason });
  }
  return { counts, failures };
});
