// Queries and mutations go over HTTP with the Headers tab as request headers (the toolkit's
// fetcher). Subscriptions go over graphql-ws with the Headers tab as the connection_init
// payload, where the server reads the token.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { getOperationAST } from 'graphql';
import { createClient } from 'graphql-ws';

export function createFetcher(url, socketUrl) {
  const overHttp = createGraphiQLFetcher({ url });
  // A socket is authenticated once, when it opens: each set of headers gets its own client.
  // Clients are lazy, so one holds no socket while none of its subscriptions runs.
  const clients = new Map();
  const clientFor = (headers = {}) => {
    const key = JSON.stringify(headers);
    if (!clients.has(key)) {
      // No retries: a refused token (close 4403) would be retried for half a minute
      // before GraphiQL could show why; here the error shows at once, and Run tries again.
      clients.set(key, createClient({ url: socketUrl, connectionParams: headers, retryAttempts: 0 }));
    }
    return clients.get(key);
  };

  return (params, options = {}) => {
    const operation = options.documentAST && getOperationAST(options.documentAST, params.operationName);
    return operation?.operation === 'subscription'
      ? subscribe(clientFor(options.headers), params)
      : overHttp(params, options);
  };
}

async function* subscribe(client, params) {
  try {
    yield* client.iterate(params);
  } catch (error) {
    if (!(error instanceof CloseEvent)) throw error;
    // graphql-ws ends with the socket's CloseEvent, which GraphiQL would print as "{}".
    // Shaped as a GraphQL error, so GraphiQL shows the message, not a stack trace.
    throw { message: closeMessage(error), extensions: { closeCode: error.code } };
  }
}

function closeMessage({ code, reason }) {
  if (code === 4403) {
    return 'The server refused the subscription: put a valid token in the Headers tab, '
      + 'as {"Authorization": "Bearer <token>"} (login or register gives you one).';
  }
  return `The server closed the socket: ${code} ${reason}`.trim();
}
