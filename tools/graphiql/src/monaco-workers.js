// Monaco runs its language services in Web Workers. GraphiQL's own setups load them from
// esm.sh or expect a Vite/webpack build; here they are files built beside this bundle
// (build.mjs passes their hashed names in MONACO_WORKERS), so they load from the server.
const files = MONACO_WORKERS;

globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    return new Worker(new URL(files[label] ?? files.editor, import.meta.url));
  },
};
