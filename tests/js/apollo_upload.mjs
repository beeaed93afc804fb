// @apollo/client with apollo-upload-client's UploadHttpLink for HTTP and GraphQLWsLink for
// subscriptions, split as Apollo's docs show: an upload, a nested query into the normalised
// cache, and a subscription whose event names the new analysis by a global id.
//
// UploadHttpLink sends no CSRF header of its own; Apollo's documented way is to add
// `Apollo-Require-Preflight: true` to the link's headers, as here.
//
// Settings: GRAPHQL_URL, TOKEN, ANALYSED_TASK_ID (a task with an analysis, findings and sources).
// Checkpoint: "subscribed" with the uploaded task's id (move it to PROCESSING and record an analysis).
import { ApolloClient, ApolloLink, InMemoryCache, gql } from '@apollo/client/core';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { TASK_EVENTS, taskEventsAfter } from './lib/documents.mjs';
import { Inbox, bearer, checkpoint, graphqlUrl, run, setting, websocketUrl } from './lib/harness.mjs';

const UPLOAD = gql`
  mutation Upload($file: Upload!) {
    uploadDocument(file: $file) { deduplicated task { id status originalFilename fileSize } }
  }
`;
const NESTED = gql`
  query Nested($id: ID!) {
    task(id: $id) {
      id status
      analysis { id verdict findings { id severity ruleId sources { id pageNumber snippet } } }
    }
  }
`;
const NODE = gql`
  query Node($id: ID!) { node(id: $id) { __typename id ... on Analysis { verdict } } }
`;
const CONTENT = 'insulation resistance: 550 megaohm\n';

function apolloClient() {
  const isSubscription = ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
  };
  const websocket = new GraphQLWsLink(createClient({
    url: websocketUrl(),
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: bearer() },
    retryAttempts: 0,
  }));
  const http = new UploadHttpLink({
    uri: graphqlUrl(),
    headers: { Authorization: bearer(), 'Apollo-Require-Preflight': 'true' },
  });
  return new ApolloClient({ cache: new InMemoryCache(), link: ApolloLink.split(isSubscription, websocket, http) });
}

run(async () => {
  const client = apolloClient();

  const file = new File([CONTENT], 'report.txt', { type: 'text/plain' });
  const upload = (await client.mutate({ mutation: UPLOAD, variables: { file } })).data.uploadDocument;

  const nested = (await client.query({ query: NESTED, variables: { id: setting('ANALYSED_TASK_ID') } })).data.task;
  const cacheKeys = Object.keys(client.cache.extract());

  const inbox = new Inbox();
  const subscription = client
    .subscribe({ query: gql(TASK_EVENTS), variables: taskEventsAfter(upload.task.id, 0) })
    .subscribe({
      next: ({ data, error }) => (error ? inbox.fail(error) : inbox.push({ data })),
      error: inbox.fail,
    });
  const stored = await inbox.take(1, 'stored events');
  await checkpoint('subscribed', { taskId: upload.task.id });
  const live = await inbox.take(2, 'live events');
  subscription.unsubscribe();

  const recorded = live.find((event) => event.type === 'ANALYSIS_RECORDED');
  const analysis = (await client.query({ query: NODE, variables: { id: recorded.data.analysisId } })).data.node;
  await client.stop();
  return {
    upload,
    uploadedBytes: CONTENT.length,
    nested,
    cacheKeys,
    events: [...stored, ...live].map(({ sequence, type }) => ({ sequence, type })),
    analysisId: recorded.data.analysisId,
    analysis,
  };
});
