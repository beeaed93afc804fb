// Apollo Client 4 set up as README.md ("Frontend") shows, from a page of another origin: a signed-in
// query, a mutation and an upload through apollo-upload-client's link. The `fetch` below only adds what a
// browser adds by itself (the page's Origin) and notes what came back.
//
// Settings: GRAPHQL_URL, TOKEN, ORIGIN.
import { ApolloClient, ApolloLink, InMemoryCache, gql } from '@apollo/client';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';

import { graphqlUrl, run, setting } from './lib/harness.mjs';

run(async () => {
  const API = graphqlUrl();
  const origin = setting('ORIGIN');
  const token = setting('TOKEN');
  const answers = [];
  const browserFetch = async (input, init) => {
    const response = await fetch(input, { ...init, headers: { ...init.headers, Origin: origin } });
    answers.push({
      status: response.status,
      contentType: response.headers.get('content-type'),
      allowOrigin: response.headers.get('access-control-allow-origin'),
    });
    return response;
  };

  // From the README:
  const signedIn = new ApolloLink((operation, forward) => {
    operation.setContext(({ headers }) => ({
      headers: { ...headers, ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    }));
    return forward(operation);
  });
  const http = new UploadHttpLink({ uri: API, headers: { 'Apollo-Require-Preflight': 'true' }, fetch: browserFetch });
  const client = new ApolloClient({ cache: new InMemoryCache(), link: ApolloLink.from([signedIn, http]) });

  const file = new File(['insulation resistance: 550 megaohm\n'], 'report.txt', { type: 'text/plain' });
  const query = await client.query({ query: gql`{ me { id email } }` });
  const mutation = await client.mutate({ mutation: gql`mutation { createStreamTicket { ticket expiresAt } }` });
  const upload = await client.mutate({
    mutation: gql`mutation($file: Upload!) { uploadDocument(file: $file) { deduplicated task { id status } } }`,
    variables: { file },
  });
  return { query: query.data, mutation: mutation.data, upload: upload.data, answers };
});
