// A TLS terminator in front of `openheim serve` for the bridge's wss://
// test: accepts TLS on a free loopback port with the given certificate and
// pipes each connection to the server. Prints `listening on PORT`.
//
//   node tls-terminator.mjs CERT_PEM KEY_PEM SERVER_HOST:PORT

import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";

const [certPath, keyPath, server] = process.argv.slice(2);
const [host, port] = server.split(":");
const terminator = tls.createServer(
  { cert: readFileSync(certPath), key: readFileSync(keyPath) },
  (inbound) => {
    const outbound = net.connect(Number(port), host);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
    };
    for (const socket of [inbound, outbound]) {
      socket.on("error", end);
      socket.on("close", end);
    }
  },
);
// Failed handshakes (the bridge refusing the certificate) are expected.
terminator.on("tlsClientError", () => {});
terminator.listen(0, "127.0.0.1", () => {
  console.log(`listening on ${terminator.address().port}`);
});
