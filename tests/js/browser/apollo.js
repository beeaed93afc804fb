// After the Apollo snippet: what the page does with its `client`.
const UPLOAD = gql`mutation($file: Upload!) { uploadDocument(file: $file) { deduplicated task { id status originalFilename } } }`;
window.app = {
  me: async () => (await client.query({ query: gql`{ me { email } }`, fetchPolicy: 'network-only' })).data.me.email,
  upload: async (text) => (await client.mutate({
    mutation: UPLOAD, variables: { file: new File([text], 'report.txt', { type: 'text/plain' }) },
  })).data.uploadDocument,
};
