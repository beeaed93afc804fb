// What a README snippet leaves to its page, in a browser: the API's address and the token from the
// page's query string, and `handle`, which keeps each event where the test reads it (window.received).
const query = new URLSearchParams(window.location.search);
export const API = query.get('api');
export const token = query.get('token');
window.received = [];
export const handle = (event) => {
  window.received.push(event);
};
