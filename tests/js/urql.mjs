// urql with its default exchanges, set up as README.md ("Frontend") shows, from a page of another origin:
// a query, a mutation and an upload, each sent with urql's own default Accept header.
//
// Settings: GRAPHQL_URL, TOKEN, ORIGIN (sent as a browser sends it).
import { Client, cacheExchange, fetchExchange } from '@urql/core';

import { bearer, graphqlUrl, run, setting } from './lib/harness.mjs';

const ME = '{ me { id email } }';
const CREATE_TICKET = 'mutation { createStreamTicket { ticket expiresAt } }';
const UPLOAD = 'mutation($file: Upload!) { uploadDocument(file: $file) { deduplicated task { originalFilename fileSize } } }';

run(async () => {
  const origin = setting('ORIGIN');
  const sent = [];
  const client = new Client({
    url: graphqlUrl(),
    exchanges: [cacheExchange, fetchExchange],
    fetchOptions: () => ({ headers: { 'Apollo-Require-Preflight': 'true', Authorization: bearer(), Origin: origin } }),
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      sent.push({
        accept: new Headers(init.headers).get('accept'),
        status: response.status,
        contentType: response.headers.get('content-type'),
        allowOrigin: response.headers.get('access-control-allow-origin'),
      });
      return response;
    },
  });
  const answer = ({ data, error }) => {
    if (error) throw new Error(`${error.message}`);
    return data;
  };
  const file = new File(['insulation resistance: 550 megaohm\n'], 'report.txt', { type: 'text/plain' });
  return {
    query: answer(await client.query(ME, {}).toPromise()),
    mutation: answer(await client.mutation(CREATE_TICKET, {}).toPromise()),
    upload: answer(await client.mutation(UPLOAD, { file }).toPromise()),
    sent,
  };
});
