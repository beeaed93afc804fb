// GraphiQL for AuditGraph, bundled so the server can ship it with no external URL.
// The page (graph/http/graphiql/page.py) passes its settings as JSON in #graphiql-config.
import { explorerPlugin } from '@graphiql/plugin-explorer';
import { GraphiQL } from 'graphiql';
import { createRoot } from 'react-dom/client';
import 'graphiql/style.css';
import '@graphiql/plugin-explorer/style.css';
import { createFetcher } from './fetcher.js';
import './monaco-workers.js';

const config = JSON.parse(document.getElementById('graphiql-config').textContent);
// The page is served by the GraphQL endpoint itself: queries go back to where it came from,
// and subscriptions to the same host over WebSocket, behind whatever prefix a proxy adds.
const endpoint = new URL(location.pathname, location.href);
const socket = new URL(endpoint);
socket.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

const fetcher = createFetcher(endpoint.href, socket.href);
const explorer = explorerPlugin();

createRoot(document.getElementById('graphiql')).render(
  <GraphiQL
    fetcher={fetcher}
    plugins={[explorer]}
    visiblePlugin={explorer}
    defaultQuery={config.defaultQuery}
    defaultHeaders={config.defaultHeaders}
    defaultEditorToolsVisibility="headers"
  />,
);
