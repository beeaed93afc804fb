// @apollo/client's persisted-queries link with hashed queries over GET, as Apollo's docs
// configure it: the first request carries the hash alone, the server does not know it, the link
// sends the query with its hash, and the next run of the same query goes by hash alone over GET.
//
// Settings: GRAPHQL_URL. Result: the data of both runs, and each request's method and what it carried.
import { createHash } from 'node:crypto';

import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client/core';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';

import { graphqlUrl, run } from './lib/harness.mjs';

const KIND = gql`query Kind { __typename }`;

function carried(url, options) {
  const fields = options.method === 'GET'
    ? [...new URL(url).searchParams.keys()]
    : Object.keys(JSON.parse(options.body));
  return fields.includes('query') ? 'query and hash' : 'hash';
}

run(async () => {
  const requests = [];
  const recordingFetch = (url, options) => {
    requests.push([options.method, carried(url, options)]);
    return fetch(url, options);
  };
  const link = createPersistedQueryLink({
    sha256: (text) => createHash('sha256').update(text).digest('hex'),
    useGETForHashedQueries: true,
  }).concat(new HttpLink({ uri: graphqlUrl(), fetch: recordingFetch }));
  const client = new ApolloClient({ cache: new InMemoryCache(), link });

  const first = await client.query({ query: KIND, fetchPolicy: 'network-only' });
  const second = await client.query({ query: KIND, fetchPolicy: 'network-only' });
  return { data: [first.data, second.data], requests };
});
