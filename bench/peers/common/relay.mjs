// The chat subset of Switchboard's JSON protocol, in memory: what the
// `loadtest chat` scenario drives, and nothing more (no persistence, no NLP,
// no bot, no queue). Shared by the Bun and the Node `ws` relays so that they
// differ only in their WebSocket server.
//
// Wire: one JSON object per text frame, subprotocol `switchboard.v1.json`.
// REST: POST /api/login and POST /api/agents, as the harness uses them.

export const SUBPROTOCOL = "switchboard.v1.json";

const now = () => Date.now();

export class Relay {
  constructor() {
    this.nextId = 1;
    this.agentsByEmail = new Map(); // email -> agent view
    this.tokens = new Map(); // token -> agent view
    this.online = new Set(); // connected agent sessions
    this.conversations = new Map(); // id -> conversation
  }

  id() {
    return this.nextId++;
  }

  // --- REST ---------------------------------------------------------------

  http(method, path, body) {
    if (method === "GET" && path === "/healthz") return [200, { status: "ok" }];
    if (method === "POST" && path === "/api/login") return this.login(body);
    if (method === "POST" && path === "/api/agents") return this.createAgent(body);
    return [404, { error: { code: "not_found", message: "no such route" } }];
  }

  login(body) {
    const email = body?.email ?? "";
    let agent = this.agentsByEmail.get(email);
    if (!agent) {
      // The admin account exists from the start.
      agent = this.addAgent(email, "Admin", "admin", 5);
    }
    const token = `t${this.id()}-${Math.random().toString(36).slice(2)}`;
    this.tokens.set(token, agent);
    return [200, { token, expires_at: now() + 86400000, agent }];
  }

  createAgent(body) {
    if (this.agentsByEmail.has(body.email)) return [409, { error: { code: "conflict", message: "email taken" } }];
    return [201, this.addAgent(body.email, body.name ?? body.email, body.role ?? "agent", body.capacity ?? 5)];
  }

  addAgent(email, name, role, capacity) {
    const agent = { id: this.id(), email, name, role, capacity, disabled: false };
    this.agentsByEmail.set(email, agent);
    return agent;
  }

  // --- WebSocket sessions ------------------------------------------------
  // `conn` is any object with send(string); the relay keeps its state on `conn.sb`.

  open(conn) {
    conn.sb = { kind: null };
  }

  close(conn) {
    if (conn.sb?.kind === "agent") this.online.delete(conn);
  }

  message(conn, text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.error(conn, "bad_request", "not JSON");
    }
    const s = conn.sb;
    switch (msg.type) {
      case "visitor_hello":
        return this.visitorHello(conn);
      case "agent_hello":
        return this.agentHello(conn, msg);
      case "send":
        if (s.kind === "visitor") return this.visitorSend(conn, msg);
        if (s.kind === "agent") return this.agentSend(conn, msg);
        return this.error(conn, "unauthorized", "hello first");
      case "set_capacity":
        if (s.kind === "agent") s.capacity = msg.capacity;
        return;
      case "set_status":
        return;
      default:
        return this.error(conn, "unknown_type", `unsupported type ${msg.type}`);
    }
  }

  visitorHello(conn) {
    const customerId = this.id();
    conn.sb = { kind: "visitor", customerId, conversation: null };
    this.send(conn, {
      type: "visitor_welcome",
      token: `v${customerId}`,
      customer_id: customerId,
      token_expires_at: now() + 86400000,
      conversations: [],
    });
  }

  agentHello(conn, msg) {
    const agent = this.tokens.get(msg.token);
    if (!agent) return this.error(conn, "unauthorized", "bad token");
    conn.sb = { kind: "agent", agent, capacity: agent.capacity, active: 0 };
    this.online.add(conn);
    this.send(conn, { type: "agent_welcome", agent, conversations: [], queue: [], agents: [] });
  }

  visitorSend(conn, msg) {
    const s = conn.sb;
    let conv = s.conversation;
    if (!conv) {
      conv = this.createConversation(conn);
      if (!conv) return this.error(conn, "overloaded", "no agent has room", msg.client_id);
      s.conversation = conv;
    }
    this.append(conv, conn, { kind: "visitor", id: s.customerId, name: "Visitor" }, msg, conv.agent);
  }

  agentSend(conn, msg) {
    const conv = this.conversations.get(msg.conversation_id);
    if (!conv || conv.agent !== conn) return this.error(conn, "not_found", "no such conversation", msg.client_id);
    const a = conn.sb.agent;
    this.append(conv, conn, { kind: "agent", id: a.id, name: a.name }, msg, conv.visitor);
  }

  createConversation(visitor) {
    let best = null;
    for (const c of this.online) {
      const free = c.sb.capacity - c.sb.active;
      if (free > 0 && (!best || free > best.sb.capacity - best.sb.active)) best = c;
    }
    if (!best) return null;
    const t = now();
    const conv = { id: this.id(), customerId: visitor.sb.customerId, visitor, agent: best, seq: 0, created: t, updated: t };
    best.sb.active++;
    this.conversations.set(conv.id, conv);
    this.send(best, { type: "conversation", event: "assigned", conversation: this.view(conv), by: null, from_agent: null });
    return conv;
  }

  append(conv, from, author, msg, to) {
    conv.seq++;
    conv.updated = now();
    const message = {
      type: "message",
      id: this.id(),
      conversation_id: conv.id,
      seq: conv.seq,
      author,
      text: msg.text,
      client_id: msg.client_id ?? null,
      sent_at: conv.updated,
      analysis: null,
    };
    this.send(from, { type: "ack", client_id: msg.client_id, conversation_id: conv.id, message_id: message.id, seq: conv.seq });
    const frame = JSON.stringify(message);
    from.send(frame);
    if (to) to.send(frame);
  }

  view(conv) {
    return {
      id: conv.id,
      customer_id: conv.customerId,
      customer_name: null,
      status: "assigned",
      agent_id: conv.agent.sb.agent.id,
      created_at: conv.created,
      updated_at: conv.updated,
      last_seq: conv.seq,
      queue_position: null,
      visitor_read_seq: 0,
      agent_read_seq: 0,
      rating: null,
      priority: 0,
      sentiment: null,
    };
  }

  error(conn, code, message, clientId = null) {
    this.send(conn, { type: "error", code, message, client_id: clientId, conversation_id: null });
  }

  send(conn, obj) {
    conn.send(JSON.stringify(obj));
  }
}

// The port to listen on, from `--listen HOST:PORT` (default 0 = any free
// port). Both relays accept (and ignore) the rest of `switchboard serve`'s
// arguments, so `loadtest --spawn --server-bin peers/<relay>/serve` runs them
// exactly like the real server.
export function listenPort(argv) {
  const i = argv.indexOf("--listen");
  if (i < 0) return 0;
  const port = Number(String(argv[i + 1]).split(":").pop());
  return Number.isInteger(port) ? port : 0;
}

export function announce(port) {
  // The same line as switchboard's, which `loadtest --spawn` waits for.
  console.log(`listening on http://127.0.0.1:${port}`);
}
