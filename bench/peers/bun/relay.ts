// The chat relay on Bun (its WebSocket server is µWebSockets; see ../common/relay.mjs).
import { Relay, SUBPROTOCOL, listenPort, announce } from "../common/relay.mjs";

const relay = new Relay();

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: listenPort(process.argv),
  async fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname === "/ws") {
      const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
      if (!offered.includes(SUBPROTOCOL)) return new Response("subprotocol required", { status: 400 });
      const ok = server.upgrade(req, { headers: { "Sec-WebSocket-Protocol": SUBPROTOCOL } });
      return ok ? undefined : new Response("upgrade failed", { status: 400 });
    }
    const text = await req.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    const [status, json] = relay.http(req.method, url.pathname, body);
    return Response.json(json, { status });
  },
  websocket: {
    maxPayloadLength: 64 * 1024,
    perMessageDeflate: false,
    open(ws) {
      relay.open(ws);
    },
    message(ws, data) {
      if (typeof data === "string") relay.message(ws, data);
    },
    close(ws) {
      relay.close(ws);
    },
  },
});

announce(server.port);
process.on("SIGTERM", () => process.exit(0));
