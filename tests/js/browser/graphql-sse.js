// After the graphql-sse snippet: what the page does with its `client` (the GraphQL over SSE protocol
// carries no files: uploads go through a multipart request, as with the other clients).
window.app = {
  me: async () => {
    for await (const result of client.iterate({ query: '{ me { email } }' })) return result.data.me.email;
    throw new Error('the query answered nothing');
  },
};
