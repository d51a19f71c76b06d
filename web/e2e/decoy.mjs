// Where a sign-in link tries to send the dashboard: a server that only counts what reaches it
// (the test fails if anything does).

import http from "node:http";
import https from "node:https";

/** Listens on a free port, over HTTPS with `tls` ({ cert, key }) when given. */
export async function startDecoy(tls) {
  const requests = [];
  const handler = (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(404).end();
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    origin: `${tls ? "https" : "http"}://127.0.0.1:${server.address().port}`,
    requests,
    close: () => server.close(),
  };
}
