// After the urql snippet: what the page does with its `client`.
const UPLOAD = gql`mutation($file: Upload!) { uploadDocument(file: $file) { deduplicated task { id status originalFilename } } }`;
const answer = (result) => {
  if (result.error) throw new Error(result.error.message);
  return result.data;
};
window.app = {
  me: async () => answer(await client.query(gql`{ me { email } }`, {}, { requestPolicy: 'network-only' }).toPromise())
    .me.email,
  upload: async (text) => answer(await client.mutation(UPLOAD, {
    file: new File([text], 'report.txt', { type: 'text/plain' }),
  }).toPromise()).uploadDocument,
};
