// The chat relay on Node.js with the `ws` package (see ../common/relay.mjs).
import http from "node:http";
import { WebSocketServer } from "ws";
import { Relay, SUBPROTOCOL, listenPort, announce } from "../common/relay.mjs";

const relay = new Relay();

const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    let parsed = null;
    try {
      parsed = body ? JSON.parse(body) : null;
    } catch {
      parsed = null;
    }
    const [status, json] = relay.http(req.method, req.url, parsed);
    const text = JSON.stringify(json);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
});

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  maxPayload: 64 * 1024,
  handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
});

server.on("upgrade", (req, socket, head) => {
  if (!req.url.startsWith("/ws")) return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    relay.open(ws);
    ws.on("message", (data, isBinary) => {
      if (!isBinary) relay.message(ws, data.toString());
    });
    ws.on("close", () => relay.close(ws));
    ws.on("error", () => {});
  });
});

server.listen(listenPort(process.argv), "127.0.0.1", () => announce(server.address().port));
process.on("SIGTERM", () => process.exit(0));
