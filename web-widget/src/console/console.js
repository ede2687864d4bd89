/*!
 * Switchboard agent console, served at /console.
 *
 * Owns: the agent's side of the wire protocol (agent_hello, claim, transfer,
 * transfer_to_team, close, send, typing, read, set_status, set_capacity) over
 * one WebSocket, and the REST calls of docs/api.md (login, conversations,
 * customers, stats, and for admins the agents' teams).
 *
 * State lives in `state` (conversations, messages by seq, presence); views are
 * redrawn from it by the `render*` functions. Text is always set with
 * textContent; links are built with DOM APIs and only for http(s).
 */
(function () {
  'use strict';

  const SUBPROTOCOL = 'switchboard.v1.json';
  const WS_URL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const MAX_TEXT_CHARS = 4000; // protocol/src/limits.rs
  const MAX_RESUME_POINTS = 64;
  const PAGE = 50;
  const TYPING_THROTTLE_MS = 3000;
  const TYPING_IDLE_MS = 4000;
  const TYPING_SHOWN_MS = 8000;
  const KEY = 'switchboard.console.';
  const TEAM_RE = /^[a-z0-9_-]{1,32}$/; // protocol/src/limits.rs is_team_name
  const MAX_TEAMS = 16;

  function shouldReconnect(code) {
    return [1001, 1006, 1011, 1012, 1013].includes(code) || (code >= 4000 && code <= 4499);
  }

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- state

  const state = {
    token: load('token'),
    me: null, // AgentView
    presence: new Map(), // agent_id -> Presence
    convs: new Map(), // id -> ConversationView
    msgs: new Map(), // conversation id -> Map(seq -> Message)
    hasOlder: new Map(), // conversation id -> bool
    loaded: new Set(), // conversations whose newest page was fetched
    unread: new Map(), // conversation id -> count
    typing: new Map(), // conversation id -> { name, timer }
    pending: new Map(), // client_id -> { frame, state }
    preview: new Map(), // conversation id -> last message text
    selected: null,
    view: 'inbox',
    readSent: new Map(), // conversation id -> seq
    hiddenNews: 0,
    customers: new Map(), // id -> Customer (cache)
    replies: null, // saved replies, fetched when first needed
    notes: new Map(), // conversation id -> Map(note id -> Note): private notes
    noteMode: false, // the composer writes a private note instead of a reply
    noteForced: false, // ... because this agent cannot reply here (not their choice)
    picker: { items: [], active: 0 }, // the saved replies offered for a `/shortcut`
  };

  function load(key) {
    try {
      return JSON.parse(localStorage.getItem(KEY + key));
    } catch (_) {
      return null;
    }
  }
  function save(key, value) {
    try {
      if (value === null || value === undefined) localStorage.removeItem(KEY + key);
      else localStorage.setItem(KEY + key, JSON.stringify(value));
    } catch (_) {
      /* private mode: keep in memory only */
    }
  }

  // ---------------------------------------------------------------- DOM helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
    return el;
  }

  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function renderText(el, text) {
    let last = 0;
    for (const m of text.matchAll(URL_RE)) {
      const url = m[0].replace(/[.,;:!?)\]}]+$/, '');
      if (m.index > last) el.append(text.slice(last, m.index));
      let href = null;
      try {
        const u = new URL(url);
        if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
      } catch (_) {
        href = null;
      }
      if (href) {
        const a = document.createElement('a');
        a.href = href;
        a.rel = 'noopener noreferrer';
        a.target = '_blank';
        a.textContent = url;
        el.append(a);
      } else {
        el.append(url);
      }
      last = m.index + url.length;
    }
    if (last < text.length) el.append(text.slice(last));
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  function when(ms) {
    if (!ms) return '—';
    const d = new Date(ms);
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return clock(ms);
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + clock(ms);
  }
  function customerName(c) {
    return (c && c.customer_name) || `Visitor #${c ? c.customer_id : '?'}`;
  }
  const COLORS = ['#6366f1', '#0ea5e9', '#10b981', '#f59e0b', '#ef4444', '#8b5cf6', '#ec4899', '#14b8a6'];
  function avatar(name, seed) {
    const letter = (String(name || '?').trim()[0] || '?').toUpperCase();
    return h('span', { class: 'avatar', style: `background:${COLORS[Number(seed || 0) % COLORS.length]}`, 'aria-hidden': 'true' }, letter);
  }
  function stars(score) {
    return '★'.repeat(score) + '☆'.repeat(Math.max(0, 5 - score));
  }
  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return 'c-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
  }

  let toastTimer = 0;
  function toast(text) {
    const el = $('toast');
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (el.hidden = true), 4000);
  }

  // ---------------------------------------------------------------- REST

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (state.token) headers.Authorization = 'Bearer ' + state.token;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch (_) {
      data = null;
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      if (res.status === 401 && path !== '/api/login') signOut('Your session has expired. Please sign in again.');
      throw new ApiError(res.status, err.code || 'http_' + res.status, err.message || res.statusText);
    }
    return data;
  }

  // ---------------------------------------------------------------- connection

  const conn = {
    ws: null,
    attempt: 0,
    timer: 0,
    welcomed: false,
    connect() {
      clearTimeout(this.timer);
      this.timer = 0;
      if (this.ws || !state.token) return;
      const ws = new WebSocket(WS_URL, SUBPROTOCOL);
      this.ws = ws;
      ws.onopen = () => ws.send(JSON.stringify({ type: 'agent_hello', token: state.token, resume: resumePoints() }));
      ws.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        if (msg && typeof msg.type === 'string') onFrame(msg);
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.welcomed = false;
        onClosed(ev.code, ev.reason);
      };
    },
    send(frame) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.welcomed) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    },
    retryLater() {
      if (this.timer || this.ws) return;
      const ceiling = Math.min(30000, 500 * 2 ** this.attempt);
      this.attempt = Math.min(this.attempt + 1, 16);
      this.timer = setTimeout(() => this.connect(), ceiling / 2 + Math.random() * (ceiling / 2));
    },
    stop() {
      clearTimeout(this.timer);
      this.timer = 0;
      const ws = this.ws;
      this.ws = null;
      this.welcomed = false;
      if (ws) ws.close(1000);
    },
  };

  function resumePoints() {
    const points = [];
    for (const [id, msgs] of state.msgs) {
      if (!msgs.size || points.length >= MAX_RESUME_POINTS) continue;
      points.push({ conversation_id: id, last_seq: contiguousSeq(id) });
    }
    return points;
  }

  function contiguousSeq(id) {
    const msgs = state.msgs.get(id);
    if (!msgs || !msgs.size) return 0;
    let seq = Math.min(...msgs.keys());
    while (msgs.has(seq + 1)) seq += 1;
    return seq;
  }

  function onClosed(code, reason) {
    if (code === 4501) return signOut('Your session has expired. Please sign in again.');
    if (code === 4503) return signOut(reason === 'account deleted' ? 'This account has been deleted.' : 'This account has been disabled.');
    if (shouldReconnect(code)) {
      banner('Connection lost. Reconnecting…');
      conn.retryLater();
    } else {
      banner(`Disconnected by the server (code ${code}). Reload the page to try again.`, true);
    }
  }

  function banner(text, error) {
    const el = $('conn-banner');
    el.hidden = !text;
    el.textContent = text || '';
    el.className = 'conn-banner' + (error ? ' error' : '');
  }

  window.addEventListener('online', () => {
    if (!conn.ws && state.token) conn.connect();
  });
  // A lost network can leave the socket half-open for minutes: drop it now, say so, and resume when it is back.
  window.addEventListener('offline', () => {
    if (!conn.ws) return;
    conn.stop();
    onClosed(1006);
  });

  // ---------------------------------------------------------------- frames

  function onFrame(msg) {
    switch (msg.type) {
      case 'agent_welcome':
        return onWelcome(msg);
      case 'ack':
        return onAck(msg);
      case 'message':
        return onMessage(msg, true);
      case 'typing':
        return onTyping(msg);
      case 'read':
        return onRead(msg);
      case 'presence':
        return onPresence(msg);
      case 'note':
        return onNote(msg);
      case 'agent_removed':
        return onAgentRemoved(msg);
      case 'conversation':
        return onConversation(msg);
      case 'queue_position':
        return onQueuePosition(msg);
      case 'history':
        return onHistory(msg);
      case 'error':
        return onError(msg);
      default:
        return undefined;
    }
  }

  function onWelcome(msg) {
    conn.welcomed = true;
    conn.attempt = 0;
    banner(null);
    state.me = msg.agent;
    save('agent', msg.agent);
    // Open conversations and the queue are authoritative; closed ones we keep.
    for (const [id, c] of state.convs) if (c.status !== 'closed') state.convs.delete(id);
    for (const c of msg.conversations || []) mergeConv(c);
    for (const c of msg.queue || []) mergeConv(c);
    state.presence.clear();
    for (const p of msg.agents || []) state.presence.set(p.agent_id, p);
    for (const c of state.convs.values()) {
      if (!state.unread.has(c.id)) state.unread.set(c.id, Math.max(0, (c.last_seq || 0) - (c.agent_read_seq || 0)));
    }
    // Come back with the status this agent chose last time (a new session starts as the server decides).
    const wanted = load('status') || 'online';
    const mine = state.presence.get(state.me.id);
    if (!mine || mine.status !== wanted) conn.send({ type: 'set_status', status: wanted });
    for (const p of state.pending.values()) conn.send(p.frame);
    renderMe();
    renderLists();
    loadClosed();
    loadOthers();
    const sel = state.selected || load('selected');
    if (sel && state.convs.has(sel)) select(sel);
    else if (state.selected) renderThread();
  }

  function mergeConv(view) {
    const old = state.convs.get(view.id);
    const c = Object.assign({}, old, view);
    if (old) {
      c.agent_read_seq = Math.max(old.agent_read_seq || 0, view.agent_read_seq || 0);
      c.visitor_read_seq = Math.max(old.visitor_read_seq || 0, view.visitor_read_seq || 0);
      c.last_seq = Math.max(old.last_seq || 0, view.last_seq || 0);
    }
    state.convs.set(view.id, c);
    return c;
  }

  function onAck(msg) {
    const p = state.pending.get(msg.client_id);
    if (!p) return;
    state.pending.delete(msg.client_id);
    addMessage({
      id: msg.message_id,
      conversation_id: msg.conversation_id,
      seq: msg.seq,
      author: { kind: 'agent', id: state.me.id, name: state.me.name },
      text: p.frame.text,
      client_id: msg.client_id,
      sent_at: p.sentAt,
      analysis: null,
    });
    markRead(msg.conversation_id); // our own reply is read by us
    if (state.selected === msg.conversation_id) renderThread();
  }

  function onMessage(m, live) {
    const isNew = addMessage(m);
    if (m.client_id && state.pending.has(m.client_id)) state.pending.delete(m.client_id);
    const c = state.convs.get(m.conversation_id);
    if (c && m.seq > (c.last_seq || 0)) c.last_seq = m.seq;
    if (live && isNew) {
      const fromOthers = !(m.author.kind === 'agent' && state.me && m.author.id === state.me.id);
      if (fromOthers && m.author.kind === 'visitor') stopTypingShown(m.conversation_id);
      const visible = state.selected === m.conversation_id && state.view === 'inbox' && !document.hidden;
      if (fromOthers && !visible) {
        state.unread.set(m.conversation_id, (state.unread.get(m.conversation_id) || 0) + 1);
      }
      if (fromOthers && m.author.kind === 'visitor' && document.hidden) notify();
      // A gap means we missed something: fetch what follows the last contiguous seq.
      const msgs = state.msgs.get(m.conversation_id);
      if (state.loaded.has(m.conversation_id) && msgs.size > 1 && contiguousSeq(m.conversation_id) < m.seq) {
        fetchAfter(m.conversation_id);
      }
    }
    if (state.selected === m.conversation_id) {
      renderThread();
      markRead(m.conversation_id);
    }
    renderLists();
  }

  function addMessage(m) {
    if (!state.msgs.has(m.conversation_id)) state.msgs.set(m.conversation_id, new Map());
    const msgs = state.msgs.get(m.conversation_id);
    const isNew = !msgs.has(m.seq);
    msgs.set(m.seq, Object.assign({}, msgs.get(m.seq), m));
    const newest = Math.max(...msgs.keys());
    if (m.seq === newest) state.preview.set(m.conversation_id, m);
    return isNew;
  }

  function onTyping(msg) {
    if (msg.author.kind !== 'visitor') return; // agents and the bot: not shown to agents here
    if (msg.typing) {
      stopTypingShown(msg.conversation_id);
      const timer = setTimeout(() => {
        state.typing.delete(msg.conversation_id);
        renderTyping();
        renderLists();
      }, TYPING_SHOWN_MS);
      state.typing.set(msg.conversation_id, { name: msg.author.name, timer });
    } else {
      stopTypingShown(msg.conversation_id);
    }
    renderTyping();
    renderLists();
  }

  function stopTypingShown(id) {
    const t = state.typing.get(id);
    if (t) clearTimeout(t.timer);
    state.typing.delete(id);
    renderTyping();
  }

  function onRead(msg) {
    const c = state.convs.get(msg.conversation_id);
    if (!c) return;
    if (msg.reader === 'visitor') {
      c.visitor_read_seq = Math.max(c.visitor_read_seq || 0, msg.seq);
      if (state.selected === c.id) renderThread();
    } else if (msg.reader === 'agent') {
      c.agent_read_seq = Math.max(c.agent_read_seq || 0, msg.seq);
      if (c.agent_read_seq >= (c.last_seq || 0)) state.unread.set(c.id, 0);
      renderLists();
    }
  }

  function onPresence(p) {
    state.presence.set(p.agent_id, p);
    if (state.me && p.agent_id === state.me.id) renderMe();
    renderTransferOptions();
    if (state.view === 'dashboard') renderTeam();
  }

  /** An account was disabled or deleted (by any admin): it leaves the roster and the transfer list. */
  function onAgentRemoved(msg) {
    state.presence.delete(msg.agent_id);
    renderTransferOptions();
    if (state.view === 'dashboard') renderTeam();
  }

  function onConversation(msg) {
    const before = state.convs.get(msg.conversation.id);
    const c = mergeConv(msg.conversation);
    const mine = state.me && c.agent_id === state.me.id;
    if (!state.unread.has(c.id)) state.unread.set(c.id, Math.max(0, (c.last_seq || 0) - (c.agent_read_seq || 0)));
    const arrived =
      (msg.event === 'queued' || msg.event === 'created' || ((msg.event === 'assigned' || msg.event === 'transferred') && mine)) &&
      (!before || before.status !== c.status || before.agent_id !== c.agent_id);
    if (arrived && document.hidden) notify();
    if (msg.event === 'transferred' && before && state.me && before.agent_id === state.me.id && !mine) {
      toast(`${customerName(c)} was transferred.`);
    }
    if (msg.event === 'rated' && mine) toast(`${customerName(c)} rated the conversation ${c.rating ? c.rating.score : '?'}/5.`);
    renderLists();
    if (state.selected === c.id) renderThread();
    // The profile changed (the visitor said who they are, or someone edited it):
    // show it, unless this agent is typing in the panel.
    if (msg.event === 'updated' && state.selected === c.id && !$('customer-panel').contains(document.activeElement)) {
      renderCustomerPanel();
    }
  }

  function onQueuePosition(msg) {
    const c = state.convs.get(msg.conversation_id);
    if (!c) return;
    c.queue_position = msg.position;
    renderLists();
  }

  function onHistory(msg) {
    for (const m of msg.messages || []) addMessage(m);
    if (state.selected === msg.conversation_id) renderThread();
    renderLists();
  }

  function onError(msg) {
    if (msg.client_id && state.pending.has(msg.client_id)) {
      const p = state.pending.get(msg.client_id);
      p.state = 'failed';
      p.error = msg.message || msg.code;
      if (state.selected === p.frame.conversation_id) renderThread();
      return;
    }
    toast(messageForError(msg.code, msg.message));
  }

  function messageForError(code, message) {
    // These come with a reason worth showing (e.g. "that agent is offline").
    if ((code === 'invalid_state' || code === 'not_found') && message && message !== 'not found') return message;
    const known = {
      forbidden: 'You are not allowed to do that.',
      not_found: 'That conversation no longer exists.',
      invalid_state: 'That is not possible in the conversation’s current state.',
      rate_limited: 'Slow down a little and try again.',
      store_unavailable: 'The server cannot save right now. Try again shortly.',
    };
    return known[code] || message || code;
  }

  // ---------------------------------------------------------------- notifications

  let audio = null;
  function notify() {
    state.hiddenNews += 1;
    document.title = `(${state.hiddenNews}) Switchboard`;
    if (!audio || audio.state !== 'running') return; // no gesture yet: the title badge is enough
    try {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.08, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.25);
    } catch (_) {
      /* no audio: the title badge is enough */
    }
  }

  // Browsers only let a page play sound after a user gesture: unlock it on the first one.
  for (const type of ['pointerdown', 'keydown']) {
    document.addEventListener(
      type,
      () => {
        try {
          audio = audio || new AudioContext();
          if (audio.state === 'suspended') audio.resume();
        } catch (_) {
          audio = null;
        }
      },
      { once: true, capture: true },
    );
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) return;
    state.hiddenNews = 0;
    document.title = 'Switchboard';
    if (state.selected && state.view === 'inbox') {
      state.unread.set(state.selected, 0);
      markRead(state.selected);
      renderLists();
    }
  });

  // ---------------------------------------------------------------- conversation actions

  async function loadClosed() {
    if (!state.me) return;
    try {
      const data = await api('GET', `/api/conversations?status=closed&agent_id=${state.me.id}&limit=20`);
      for (const c of data.conversations || []) if (!state.convs.has(c.id) || state.convs.get(c.id).status === 'closed') mergeConv(c);
      renderLists();
      const sel = load('selected');
      if (!state.selected && sel && state.convs.has(sel)) select(sel);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }

  /** Admins: the conversations assigned to other agents (the welcome has only one's own); events keep them current. */
  async function loadOthers() {
    if (!isAdmin()) return;
    try {
      const data = await api('GET', '/api/conversations?status=assigned&limit=200');
      for (const c of data.conversations || []) if (!state.convs.has(c.id)) mergeConv(c);
      renderLists();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
  }

  function isAdmin() {
    return !!state.me && state.me.role === 'admin';
  }

  async function select(id) {
    state.selected = id;
    save('selected', id);
    state.unread.set(id, 0);
    renderLists();
    renderThread();
    renderCustomerPanel();
    if (!state.loaded.has(id)) await fetchPage(id, null);
    markRead(id);
    $('composer-input').focus();
  }

  /** The newest page (before = null) or the page before `before`, via REST. */
  async function fetchPage(id, before) {
    const qs = before ? `?before=${before}&limit=${PAGE}` : `?limit=${PAGE}`;
    try {
      const data = await api('GET', `/api/conversations/${id}${qs}`);
      if (data.conversation) mergeConv(data.conversation);
      for (const m of data.messages || []) addMessage(m);
      for (const n of data.notes || []) addNote(n);
      if (!state.msgs.has(id)) state.msgs.set(id, new Map());
      if (!before || state.hasOlder.get(id) !== false) state.hasOlder.set(id, !!data.has_more);
      state.loaded.add(id);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      toast(messageForError(err.code, err.message));
    }
    if (state.selected === id) renderThread(before ? 'keep' : 'bottom');
    renderLists();
  }

  async function fetchAfter(id) {
    const after = contiguousSeq(id);
    try {
      const data = await api('GET', `/api/conversations/${id}?after=${after}&limit=200`);
      for (const m of data.messages || []) addMessage(m);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
    if (state.selected === id) renderThread();
  }

  let loadingOlder = false;
  async function loadOlder() {
    const id = state.selected;
    if (!id || loadingOlder || !state.hasOlder.get(id)) return;
    const msgs = state.msgs.get(id);
    if (!msgs || !msgs.size) return;
    const low = Math.min(...msgs.keys());
    if (low <= 1) return;
    loadingOlder = true;
    $('log-older').hidden = false;
    await fetchPage(id, low);
    $('log-older').hidden = true;
    loadingOlder = false;
  }

  function markRead(id) {
    if (document.hidden || state.view !== 'inbox' || state.selected !== id) return;
    const msgs = state.msgs.get(id);
    if (!msgs || !msgs.size) return;
    const seq = Math.max(...msgs.keys());
    const c = state.convs.get(id);
    if (!c || !state.me || c.agent_id !== state.me.id) return; // only the assigned agent's reads count
    if ((state.readSent.get(id) || 0) >= seq) return;
    if (conn.send({ type: 'read', conversation_id: id, seq })) {
      state.readSent.set(id, seq);
      c.agent_read_seq = Math.max(c.agent_read_seq || 0, seq);
    }
    state.unread.set(id, 0);
  }

  /** A private note from any agent (our own included: the echo confirms it). */
  function onNote(n) {
    addNote(n);
    if (state.selected === n.conversation_id) renderThread(state.me && n.author.id === state.me.id ? 'bottom' : undefined);
  }

  function addNote(n) {
    if (!state.notes.has(n.conversation_id)) state.notes.set(n.conversation_id, new Map());
    state.notes.get(n.conversation_id).set(n.id, n);
  }

  /** Sends the composer's text as a private note: the agents see it, the visitor never does. */
  function sendNote(text) {
    if (!state.selected) return;
    conn.send({ type: 'note', conversation_id: state.selected, client_id: newClientId(), text });
  }

  /** Switches the composer between a reply to the visitor and a private note. */
  function setNoteMode(on, focus = true) {
    state.noteMode = on;
    state.noteForced = false;
    $('mode-reply').setAttribute('aria-pressed', String(!on));
    $('mode-note').setAttribute('aria-pressed', String(on));
    $('composer').classList.toggle('note-mode', on);
    const input = $('composer-input');
    input.placeholder = on
      ? 'Write a private note… only agents see it (Enter to save)'
      : 'Write a reply… (Enter to send, Shift+Enter for a new line, / for saved replies)';
    input.setAttribute('aria-label', on ? 'Private note' : 'Reply');
    $('composer-send').textContent = on ? 'Add note' : 'Send';
    if (on) stopTyping();
    if (focus) input.focus();
  }

  function noteRow(n) {
    return h(
      'div',
      { class: 'msg note', 'data-note': String(n.id) },
      h('div', { class: 'who' }, h('span', null, n.author.name || 'Agent'), h('span', { class: 'tag note' }, 'Private note')),
      h('div', { class: 'bubble', dir: 'auto' }, String(n.text)),
      h('div', { class: 'meta' }, clock(n.sent_at) + ' · only agents see this'),
    );
  }

  function sendReply(text) {
    const id = state.selected;
    const c = state.convs.get(id);
    if (!c) return;
    const frame = { type: 'send', client_id: newClientId(), conversation_id: id, text };
    state.pending.set(frame.client_id, { frame, state: 'sending', sentAt: Date.now() });
    conn.send(frame);
    stopTyping();
    renderThread('bottom');
  }

  let typingSentAt = 0;
  let typingIdle = 0;
  function noteTyping() {
    if (state.noteMode) return; // a note is not for the visitor, nor is its typing
    const id = state.selected;
    const c = state.convs.get(id);
    if (!c || c.status === 'closed' || !state.me || c.agent_id !== state.me.id) return;
    const now = Date.now();
    if (now - typingSentAt > TYPING_THROTTLE_MS) {
      typingSentAt = now;
      conn.send({ type: 'typing', conversation_id: id, typing: true });
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
  }
  function stopTyping() {
    clearTimeout(typingIdle);
    if (!typingSentAt) return;
    typingSentAt = 0;
    if (state.selected) conn.send({ type: 'typing', conversation_id: state.selected, typing: false });
  }

  // ---------------------------------------------------------------- rendering: lists

  function renderLists() {
    // The lists are rebuilt on every event: keep a keyboard user's focus on the item they were on.
    const focused = document.activeElement;
    const refocus = focused && focused.matches('.conv[data-conversation]') ? focused.dataset.conversation : null;
    drawLists();
    if (refocus) {
      const item = document.querySelector(`.conv-list:not([hidden]) .conv[data-conversation="${refocus}"]`);
      if (item) item.focus();
    }
  }

  function drawLists() {
    const all = [...state.convs.values()];
    const meId = state.me ? state.me.id : -1;
    const queue = all
      .filter((c) => c.status === 'queued')
      .sort((a, b) => (a.queue_position || 1e9) - (b.queue_position || 1e9) || a.created_at - b.created_at);
    const mine = all
      .filter((c) => c.agent_id === meId && c.status !== 'closed' && c.status !== 'queued')
      .sort((a, b) => b.updated_at - a.updated_at);
    const bot = all.filter((c) => c.status === 'bot').sort((a, b) => b.updated_at - a.updated_at);
    // Admins see (and may transfer) every open conversation, so they get the others' too.
    const admin = isAdmin();
    const others = admin
      ? all.filter((c) => c.status === 'assigned' && c.agent_id !== meId).sort((a, b) => b.updated_at - a.updated_at)
      : [];
    $('others-head').hidden = !admin;
    $('others-list').hidden = !admin;
    $('others-list').replaceChildren(...others.map((c) => convItem(c, false)));
    $('others-count').textContent = String(others.length);
    const closed = all
      .filter((c) => c.status === 'closed' && c.agent_id === meId)
      .sort((a, b) => b.updated_at - a.updated_at)
      .slice(0, 20);
    $('queue-list').replaceChildren(...queue.map((c) => convItem(c, true)));
    $('mine-list').replaceChildren(...mine.map((c) => convItem(c, false)));
    $('bot-list').replaceChildren(...bot.map((c) => convItem(c, false)));
    $('bot-count').textContent = String(bot.length);
    $('closed-list').replaceChildren(...closed.map((c) => convItem(c, false)));
    $('queue-count').textContent = String(queue.length);
    $('mine-count').textContent = String(mine.length);
    const unread = mine.reduce((n, c) => n + (state.unread.get(c.id) || 0), 0);
    $('nav-unread').hidden = unread === 0;
    $('nav-unread').textContent = String(unread);
  }

  function previewPrefix(m) {
    if (m.author.kind === 'bot') return 'Bot: ';
    if (m.author.kind !== 'agent') return '';
    return state.me && m.author.id === state.me.id ? 'You: ' : `${m.author.name}: `;
  }

  function convItem(c, queued) {
    const last = state.preview.get(c.id);
    const typing = state.typing.get(c.id);
    const unread = queued ? 0 : state.unread.get(c.id) || 0;
    const sub = h('div', { class: 'conv-sub' });
    if (c.priority > 0 && c.status !== 'closed') {
      sub.append(h('span', { class: 'prio', title: `Priority ${c.priority} (raised by negative sentiment)` }, 'urgent'));
    }
    if (c.team) sub.append(h('span', { class: 'team-chip', title: 'Team' }, c.team));
    if (typing) sub.append(h('span', { class: 'typing-mini' }, 'typing…'));
    else if (queued) sub.append(`#${c.queue_position || '?'} in queue`);
    else if (c.rating) sub.append(h('span', { class: 'stars-mini', 'aria-label': `Rated ${c.rating.score} of 5` }, stars(c.rating.score)));
    else if (last) sub.append(previewPrefix(last) + last.text);
    else if (c.last_seq) sub.append(`${c.last_seq} message${c.last_seq === 1 ? '' : 's'}`);
    else sub.append(c.status === 'closed' ? 'Closed' : 'No messages yet');
    const button = h(
      'button',
      {
        class: 'conv',
        type: 'button',
        'data-conversation': String(c.id),
        'aria-current': state.selected === c.id ? 'true' : 'false',
        onclick: () => select(c.id),
      },
      avatar(customerName(c), c.customer_id),
      h(
        'div',
        { class: 'conv-body' },
        h(
          'div',
          { class: 'conv-top' },
          h('span', { class: 'conv-name' }, customerName(c)),
          h('span', { class: 'conv-time' }, when(c.updated_at)),
        ),
        sub,
      ),
      unread ? h('span', { class: 'unread', 'aria-label': `${unread} unread`, 'data-unread': String(unread) }, String(unread)) : null,
    );
    return h('li', null, button);
  }

  // ---------------------------------------------------------------- rendering: thread

  function renderThread(scroll) {
    const had = document.activeElement;
    drawThread(scroll);
    // Claim, Close or Transfer just vanished under a keyboard user's focus: keep it in the conversation.
    if (had && had !== document.body && $('thread-main').contains(had) && had.offsetParent === null && !$('thread-main').hidden) {
      const input = $('composer-input');
      (input.offsetParent !== null ? input : $('thread-log')).focus();
    }
  }

  function drawThread(scroll) {
    const id = state.selected;
    const c = id ? state.convs.get(id) : null;
    $('thread-empty').hidden = !!c;
    $('thread-main').hidden = !c;
    $('view-inbox').classList.toggle('no-customer', !c);
    if (!c) return;
    const meId = state.me ? state.me.id : -1;
    const mine = c.agent_id === meId;
    $('thread-name').textContent = customerName(c);
    const pill = $('thread-status');
    pill.className = 'status-pill ' + c.status;
    pill.textContent = statusText(c);
    const team = $('thread-team');
    team.hidden = !c.team;
    team.textContent = c.team ? `Team ${c.team}` : '';
    const rating = $('thread-rating');
    rating.hidden = !c.rating;
    if (c.rating) {
      rating.replaceChildren(
        h('span', { class: 'stars', 'aria-hidden': 'true' }, stars(c.rating.score)),
        ` ${c.rating.score}/5`,
        c.rating.comment ? ` — “${c.rating.comment}”` : '',
      );
      rating.setAttribute('data-score', String(c.rating.score));
    }
    $('claim').hidden = c.status !== 'queued' && c.status !== 'bot';
    renderTransferOptions();
    // An admin may write into and close any assigned conversation (the server allows it).
    const mayWrite = mine || (isAdmin() && c.status === 'assigned');
    $('close-conv').hidden = c.status === 'closed' || c.status === 'queued' ? true : !mayWrite;

    const log = $('thread-log');
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    const fromBottom = log.scrollHeight - log.scrollTop;
    const rows = [$('log-older')];
    const msgs = [...(state.msgs.get(id) || new Map()).values()].sort((a, b) => a.seq - b.seq);
    if (state.hasOlder.get(id) === false && msgs.length && msgs[0].seq === 1) {
      rows.push(h('div', { class: 'msg system' }, h('div', { class: 'bubble' }, `Conversation started ${when(c.created_at)}`)));
    }
    // Private notes go between the messages by time.
    const notes = [...(state.notes.get(id) || new Map()).values()].sort((a, b) => a.sent_at - b.sent_at || a.id - b.id);
    let nextNote = 0;
    let prev = null;
    for (const m of msgs) {
      while (nextNote < notes.length && notes[nextNote].sent_at < m.sent_at) {
        rows.push(noteRow(notes[nextNote++]));
        prev = null;
      }
      const row = messageRow(m, c);
      // Consecutive messages of one author within five minutes form a group: one name label.
      if (prev && prev.author.kind === m.author.kind && prev.author.id === m.author.id && m.sent_at - prev.sent_at < 300000) {
        row.classList.add('cont');
      }
      rows.push(row);
      prev = m;
    }
    for (const n of notes.slice(nextNote)) rows.push(noteRow(n));
    for (const p of state.pending.values()) {
      if (p.frame.conversation_id === id) rows.push(pendingRow(p));
    }
    log.replaceChildren(...rows);
    if (scroll === 'keep') log.scrollTop = log.scrollHeight - fromBottom;
    else if (scroll === 'bottom' || atBottom) log.scrollTop = log.scrollHeight;

    const note = $('composer-note');
    const canWrite = mayWrite && c.status !== 'closed';
    // Any agent may leave a private note anywhere; only replies need the
    // conversation. Where this agent cannot reply the composer writes notes;
    // once they can, it goes back to replies, unless a note is half-written
    // (it must not turn into a reply) or they chose notes themselves.
    $('mode-reply').disabled = !canWrite;
    if (!canWrite && !state.noteMode) {
      setNoteMode(true, false);
      state.noteForced = true;
    } else if (canWrite && state.noteForced && !$('composer-input').value.trim()) {
      setNoteMode(false, false);
    }
    note.hidden = canWrite;
    note.textContent =
      (c.status === 'queued'
        ? 'Claim this conversation to reply.'
        : c.status === 'bot'
          ? 'The bot is handling this conversation. Claim it to take over.'
          : c.status === 'closed'
            ? 'This conversation is closed.'
            : 'This conversation belongs to another agent.') + ' Private notes are open to every agent.';
    renderTyping();
  }

  function statusText(c) {
    if (c.status === 'queued') return `Queued #${c.queue_position || '?'}`;
    if (c.status === 'assigned') {
      const p = state.presence.get(c.agent_id);
      return state.me && c.agent_id === state.me.id ? 'Assigned to you' : `Assigned to ${p ? p.name : 'agent #' + c.agent_id}`;
    }
    if (c.status === 'bot') return 'Bot';
    return 'Closed';
  }

  function messageRow(m, c) {
    const kind = m.author.kind;
    const team = kind === 'agent' || kind === 'bot';
    const row = h('div', { class: `msg ${kind}${team ? ' team' : ''}`, 'data-seq': String(m.seq), 'data-author': kind });
    if (kind !== 'system') {
      // Anonymous visitors are all called "visitor" on the wire: show the profile's name.
      const name = kind === 'visitor' ? customerName(c) : m.author.name || kind;
      const who = h('div', { class: 'who' }, h('span', null, name));
      if (kind === 'bot') who.append(h('span', { class: 'tag bot' }, 'Bot'));
      if (kind === 'agent' && (!state.me || m.author.id !== state.me.id)) who.append(h('span', { class: 'tag agent' }, 'Agent'));
      row.append(who);
    }
    const bubble = h('div', { class: 'bubble', dir: 'auto' }); // right-to-left text reads right to left
    renderText(bubble, String(m.text));
    row.append(bubble);
    if (kind === 'visitor' && m.analysis) row.append(nlpChips(m.analysis));
    if (kind !== 'system') {
      let meta = clock(m.sent_at);
      if (team && (c.visitor_read_seq || 0) >= m.seq) meta += ' · Seen';
      row.append(h('div', { class: 'meta' }, meta));
    }
    return row;
  }

  function nlpChips(a) {
    const box = h('div', { class: 'nlp', 'aria-label': 'What the assistant understood' });
    if (a.intent) {
      box.append(h('span', { class: 'chip intent', title: 'Intent and confidence' }, `${a.intent.replace(/_/g, ' ')} · ${Math.round((a.confidence || 0) * 100)}%`));
    } else {
      box.append(h('span', { class: 'chip', title: 'No intent above the threshold' }, 'no clear intent'));
    }
    const label = a.sentiment_label || 'neutral';
    box.append(h('span', { class: 'chip ' + label, title: 'Sentiment' }, `${label} ${Number(a.sentiment || 0).toFixed(2)}`));
    if (a.language && a.language !== 'und') box.append(h('span', { class: 'chip', title: 'Language' }, a.language));
    for (const e of a.entities || []) {
      box.append(h('span', { class: 'chip entity', title: 'Entity' }, h('b', null, e.kind.replace(/_/g, ' ') + ': '), e.value));
    }
    if (a.bot_answered) box.append(h('span', { class: 'chip', title: 'The bot answered this message' }, 'answered by bot'));
    return box;
  }

  function pendingRow(p) {
    const row = h('div', { class: 'msg agent team ' + (p.state === 'failed' ? 'failed' : 'pending'), 'data-client-id': p.frame.client_id });
    const bubble = h('div', { class: 'bubble', dir: 'auto' }); // right-to-left text reads right to left
    renderText(bubble, p.frame.text);
    row.append(bubble);
    if (p.state === 'failed') {
      row.append(
        h(
          'div',
          { class: 'meta' },
          `Not sent (${p.error}) · `,
          h('button', { class: 'btn ghost', type: 'button', onclick: () => { p.state = 'sending'; conn.send(p.frame); renderThread(); } }, 'Retry'),
        ),
      );
    } else {
      row.append(h('div', { class: 'meta' }, 'Sending…'));
    }
    return row;
  }

  function renderTyping() {
    const el = $('thread-typing');
    const t = state.selected ? state.typing.get(state.selected) : null;
    el.hidden = !t;
    el.textContent = t ? `${t.name || 'Visitor'} is typing…` : '';
  }

  /**
   * Where the selected conversation may go, as the server allows it (hub
   * `transfer`, `transfer_to_team`): an assigned one, by its agent or an
   * admin, to another agent or to a team; a waiting one (queued, or with the
   * bot), by anyone to a team, and by an admin to an agent too (other agents
   * claim it for themselves).
   */
  function transferKinds(c) {
    if (!c || !state.me) return { agents: false, teams: false };
    if (c.status === 'assigned') {
      const may = c.agent_id === state.me.id || isAdmin();
      return { agents: may, teams: may };
    }
    const waiting = c.status === 'queued' || c.status === 'bot';
    return { agents: waiting && isAdmin(), teams: waiting };
  }

  /**
   * Fills the transfer select for the selected conversation: agents (online
   * with a free slot: the server refuses the others; not its current agent)
   * and teams; the control shows only when there is somewhere to go.
   */
  function renderTransferOptions() {
    const sel = $('transfer-to');
    const current = sel.value;
    const c = state.selected ? state.convs.get(state.selected) : null;
    // Nothing selected (the control is not on screen): everything, as a start.
    const kinds = c ? transferKinds(c) : { agents: true, teams: true };
    const holder = c ? c.agent_id : state.me && state.me.id;
    const agents = [...state.presence.values()]
      .filter((p) => kinds.agents && p.agent_id !== holder)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => h('option', { value: 'agent:' + p.agent_id, disabled: p.status !== 'online' || p.active >= p.capacity }, `${p.name} (${p.status}, ${p.active}/${p.capacity})`));
    const teams = [...new Set([...state.presence.values()].flatMap((p) => p.teams || []))].sort();
    const teamOptions = (kinds.teams ? teams : []).map((t) => {
      const online = [...state.presence.values()].filter((p) => p.status === 'online' && (p.teams || []).includes(t)).length;
      return h('option', { value: 'team:' + t }, `Team ${t} (${online} online)`);
    });
    sel.replaceChildren(
      h('option', { value: '' }, kinds.agents ? 'Transfer to…' : 'Move to a team…'),
      kinds.agents ? h('optgroup', { label: 'Agents' }, ...agents) : null,
      teamOptions.length ? h('optgroup', { label: 'Teams' }, ...teamOptions) : null,
    );
    sel.value = [...sel.options].some((o) => o.value === current) ? current : '';
    $('transfer-box').hidden = !(kinds.agents || teamOptions.length > 0);
  }

  /** The transfer the select asks for, as a client frame (null: nothing picked). */
  function transferFrame(value, conversationId) {
    if (value.startsWith('agent:')) {
      const to = parseInt(value.slice(6), 10);
      return to ? { type: 'transfer', conversation_id: conversationId, to_agent: to } : null;
    }
    if (value.startsWith('team:')) return { type: 'transfer_to_team', conversation_id: conversationId, team: value.slice(5) };
    return null;
  }

  function renderMe() {
    if (!state.me) return;
    $('me-name').textContent = state.me.name;
    const p = state.presence.get(state.me.id);
    const status = p ? p.status : 'offline';
    $('me-dot').className = 'dot ' + status;
    if (status !== 'offline') $('me-status').value = status;
    const cap = p ? p.capacity : state.me.capacity;
    if (document.activeElement !== $('me-capacity')) $('me-capacity').value = String(cap);
  }

  // ---------------------------------------------------------------- customer panel

  const CUSTOMER_FIELDS = ['name', 'email', 'phone', 'company', 'country'];

  async function renderCustomerPanel() {
    const panel = $('customer-panel');
    const c = state.convs.get(state.selected);
    panel.hidden = !c;
    if (!c) return;
    panel.replaceChildren(h('p', { class: 'muted' }, 'Loading customer…'));
    try {
      const customer = await api('GET', `/api/customers/${c.customer_id}`);
      if (state.selected !== c.id) return;
      state.customers.set(customer.id, customer);
      panel.replaceChildren(...customerView(customer, c));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      panel.replaceChildren(h('p', { class: 'muted' }, 'This customer could not be loaded.'));
    }
  }

  function customerView(customer, conv) {
    const form = customerForm(customer, (updated) => {
      for (const cv of state.convs.values()) if (cv.customer_id === updated.id) cv.customer_name = updated.name;
      renderLists();
      renderThread();
      const head = $('customer-panel').querySelector('.cp-head');
      if (head) head.replaceWith(customerHead(updated));
    });
    const facts = h('dl', { class: 'facts' });
    const fact = (k, v) => facts.append(h('dt', null, k), h('dd', null, v || '—'));
    fact('First seen', when(customer.first_seen));
    fact('Last seen', when(customer.last_seen));
    fact('Last page', customer.last_page_url);
    fact('Browser', customer.user_agent ? customer.user_agent.slice(0, 80) : null);
    if (customer.external_id) fact('User id', customer.external_id);
    const convFacts = h('dl', { class: 'facts' });
    const cfact = (k, v) => convFacts.append(h('dt', null, k), h('dd', null, v));
    cfact('Conversation', `#${conv.id}`);
    cfact('Team', conv.team || '—');
    cfact('Priority', String(conv.priority));
    cfact('Sentiment', conv.sentiment === null || conv.sentiment === undefined ? '—' : Number(conv.sentiment).toFixed(2));
    cfact('Rating', conv.rating ? `${stars(conv.rating.score)} ${conv.rating.comment || ''}` : '—');
    return [
      customerHead(customer),
      form,
      h('div', { class: 'cp-section' }, h('h4', null, 'Activity'), facts),
      h('div', { class: 'cp-section' }, h('h4', null, 'This conversation'), convFacts),
    ];
  }

  function customerHead(customer) {
    return h(
      'div',
      { class: 'cp-head' },
      avatar(customer.name || 'Visitor', customer.id),
      h('div', null, h('h3', null, customer.name || `Visitor #${customer.id}`), h('div', { class: 'muted' }, customer.email || 'No email yet')),
    );
  }

  /** A profile editor: PATCHes only the fields that changed. */
  function customerForm(customer, onSaved, extraButtons) {
    const inputs = {};
    const form = h('form', { class: 'customer-form', 'data-customer': String(customer.id) });
    for (const f of CUSTOMER_FIELDS) {
      inputs[f] = h('input', { type: f === 'email' ? 'email' : 'text', name: f, value: customer[f] || '', maxlength: '512' });
      form.append(h('label', { class: 'field' }, f[0].toUpperCase() + f.slice(1), inputs[f]));
    }
    inputs.tags = h('input', { type: 'text', name: 'tags', value: (customer.tags || []).join(', ') });
    form.append(h('label', { class: 'field' }, 'Tags (comma separated)', inputs.tags));
    inputs.attributes = h('textarea', { name: 'attributes', rows: '3' });
    inputs.attributes.value = Object.entries(customer.attributes || {}).map(([k, v]) => `${k}=${v}`).join('\n');
    form.append(h('label', { class: 'field' }, 'Attributes (key=value per line)', inputs.attributes));
    const saved = h('span', { class: 'saved', role: 'status' });
    form.append(h('div', { class: 'form-actions' }, h('button', { class: 'btn primary', type: 'submit' }, 'Save'), ...(extraButtons || []), saved));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const patch = {};
      for (const f of CUSTOMER_FIELDS) {
        const v = inputs[f].value.trim();
        if (v !== (customer[f] || '')) patch[f] = v === '' ? null : v;
      }
      const tags = inputs.tags.value.split(',').map((t) => t.trim()).filter(Boolean);
      if (tags.join(',') !== (customer.tags || []).join(',')) patch.tags = tags;
      const attributes = {};
      for (const line of inputs.attributes.value.split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) attributes[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      if (JSON.stringify(attributes) !== JSON.stringify(customer.attributes || {})) patch.attributes = attributes;
      if (!Object.keys(patch).length) {
        saved.textContent = 'Nothing changed';
        return;
      }
      try {
        const updated = await api('PATCH', `/api/customers/${customer.id}`, patch);
        Object.assign(customer, updated);
        state.customers.set(updated.id, updated);
        saved.textContent = 'Saved';
        setTimeout(() => (saved.textContent = ''), 2500);
        onSaved(updated);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        saved.textContent = '';
        toast(`Could not save: ${err.message}`);
      }
    });
    return form;
  }

  // ---------------------------------------------------------------- customers page

  let customerCursor = null;
  let selectedCustomer = null;

  async function loadCustomers(append) {
    const params = new URLSearchParams();
    const q = $('cs-q').value.trim();
    const country = $('cs-country').value.trim();
    const tag = $('cs-tag').value.trim();
    if (q) params.set('q', q);
    if (country) params.set('country', country);
    if (tag) params.set('tag', tag);
    params.set('limit', '50');
    if (append && customerCursor) params.set('cursor', customerCursor);
    try {
      const data = await api('GET', '/api/customers?' + params.toString());
      const rows = (data.customers || []).map(customerRow);
      if (append) $('customer-rows').append(...rows);
      else $('customer-rows').replaceChildren(...rows);
      customerCursor = data.next_cursor || null;
      $('customers-more').hidden = !customerCursor;
      $('customers-empty').hidden = $('customer-rows').children.length > 0;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      toast(`Could not load customers: ${err.message}`);
    }
  }

  function customerRow(cu) {
    state.customers.set(cu.id, cu);
    const tags = h('td');
    for (const t of cu.tags || []) tags.append(h('span', { class: 'tagchip' }, t));
    const row = h(
      'tr',
      { 'data-customer': String(cu.id), tabindex: '0', 'aria-selected': selectedCustomer === cu.id ? 'true' : 'false' },
      h('td', null, cu.name || `Visitor #${cu.id}`),
      h('td', null, cu.email || '—'),
      h('td', null, cu.phone || '—'),
      h('td', null, cu.country || '—'),
      tags,
      h('td', null, when(cu.last_seen)),
    );
    const open = () => openCustomerEditor(cu.id);
    row.addEventListener('click', open);
    row.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        open();
      }
    });
    return row;
  }

  async function openCustomerEditor(id) {
    selectedCustomer = id;
    for (const tr of $('customer-rows').children) tr.setAttribute('aria-selected', tr.dataset.customer === String(id) ? 'true' : 'false');
    const editor = $('customer-editor');
    editor.hidden = false;
    let customer;
    try {
      customer = await api('GET', `/api/customers/${id}`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      editor.replaceChildren(h('p', { class: 'muted' }, 'This customer no longer exists.'));
      return;
    }
    const del = h('button', { class: 'btn danger', type: 'button' }, 'Delete');
    del.addEventListener('click', async () => {
      if (!confirm(`Delete ${customer.name || 'this customer'} and all their conversations? This cannot be undone.`)) return;
      try {
        await api('DELETE', `/api/customers/${id}`);
        editor.hidden = true;
        selectedCustomer = null;
        const row = $('customer-rows').querySelector(`tr[data-customer="${id}"]`);
        if (row) row.remove();
        for (const [cid, c] of state.convs) if (c.customer_id === id) state.convs.delete(cid);
        renderLists();
        toast('Customer deleted.');
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        toast(`Could not delete: ${err.message}`);
      }
    });
    const form = customerForm(
      customer,
      (updated) => {
        const row = $('customer-rows').querySelector(`tr[data-customer="${id}"]`);
        if (row) row.replaceWith(customerRow(updated));
      },
      [del],
    );
    editor.replaceChildren(h('h2', null, customer.name || `Visitor #${customer.id}`), form);
  }

  // ---------------------------------------------------------------- dashboard

  async function loadStats() {
    let s;
    try {
      s = await api('GET', '/api/stats');
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      toast(`Could not load stats: ${err.message}`);
      return;
    }
    const card = (label, value, hint) =>
      h('div', { class: 'card', 'data-stat': label }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), hint ? h('div', { class: 'hint' }, hint) : null);
    const fmt = (x, d) => (x === null || x === undefined ? '—' : Number(x).toFixed(d));
    $('stat-cards').replaceChildren(
      card('Open conversations', String(s.open_conversations ?? '—')),
      card('Queue length', String(s.queue_length ?? '—')),
      card('Agents online', String(s.agents_online ?? '—')),
      card('Avg first response', s.avg_first_response_ms === null || s.avg_first_response_ms === undefined ? '—' : duration(s.avg_first_response_ms)),
      card('Avg rating', s.avg_rating === null || s.avg_rating === undefined ? '—' : `${fmt(s.avg_rating, 1)} ★`, `${s.ratings || 0} rating${s.ratings === 1 ? '' : 's'}`),
      card('Avg sentiment', fmt(s.avg_sentiment, 2), '-1 negative … +1 positive'),
    );
    renderChart(s.sentiment_by_day || []);
    renderTeam();
  }

  function duration(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    return m < 60 ? `${m}m ${s % 60}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
  }

  function renderChart(days) {
    const box = $('sentiment-chart');
    if (!days.length) {
      box.replaceChildren(h('p', { class: 'muted' }, 'No visitor messages analysed yet.'));
      return;
    }
    const ns = 'http://www.w3.org/2000/svg';
    const mk = (tag, attrs) => {
      const el = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
      return el;
    };
    const W = 600;
    const H = 180;
    const mid = H / 2;
    const shown = days.slice(-30);
    const bw = Math.min(W / shown.length, 64);
    const x0 = (W - bw * shown.length) / 2; // few days: narrow bars, centred
    const svgEl = mk('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Average sentiment per day' });
    svgEl.append(mk('line', { x1: 0, x2: W, y1: mid, y2: mid, stroke: '#d6d9e3' }));
    shown.forEach((d, i) => {
      const v = Math.max(-1, Math.min(1, Number(d.avg) || 0));
      const hgt = Math.abs(v) * (mid - 14);
      const rect = mk('rect', {
        x: x0 + i * bw + bw * 0.2,
        width: Math.max(2, bw * 0.6),
        y: v >= 0 ? mid - Math.max(2, hgt) : mid,
        height: Math.max(2, hgt),
        rx: 3,
        fill: Math.abs(v) < 0.05 ? '#b8bdcc' : v > 0 ? '#34d399' : '#f87171',
      });
      const title = mk('title', {});
      title.textContent = `${d.day}: ${v.toFixed(2)} (${d.messages} messages)`;
      rect.append(title);
      svgEl.append(rect);
      if (shown.length <= 10 || i % Math.ceil(shown.length / 8) === 0) {
        const t = mk('text', { x: x0 + i * bw + bw / 2, y: H - 2, 'text-anchor': 'middle', 'font-size': 10, fill: '#687086' });
        t.textContent = String(d.day).slice(5);
        svgEl.append(t);
        const val = mk('text', { x: x0 + i * bw + bw / 2, y: v >= 0 ? mid - hgt - 5 : mid + hgt + 13, 'text-anchor': 'middle', 'font-size': 10, fill: '#687086' });
        val.textContent = v.toFixed(2);
        svgEl.append(val);
      }
    });
    box.replaceChildren(svgEl);
  }

  function renderTeam() {
    const list = $('team-list');
    // An admin typing teams keeps their input: the list redraws once they leave it.
    if (list.contains(document.activeElement) && document.activeElement.tagName === 'INPUT') return;
    const admin = state.me && state.me.role === 'admin';
    const items = [...state.presence.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => {
        const li = h(
          'li',
          { 'data-agent': String(p.agent_id) },
          h('span', { class: 'dot ' + p.status, 'aria-hidden': 'true' }),
          h('span', null, p.name),
          ...(p.teams || []).map((t) => h('span', { class: 'team-chip' }, t)),
          h('span', { class: 'load' }, `${p.status} · ${p.active}/${p.capacity}`),
        );
        if (admin) li.append(teamsForm(p));
        if (admin && (!state.me || p.agent_id !== state.me.id)) li.append(deleteAgentButton(p));
        return li;
      });
    list.replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, 'No agents')]));
  }

  /** Admins: an agent's teams, comma separated, saved with PATCH /api/agents/{id}. */
  function teamsForm(p) {
    const input = h('input', { type: 'text', name: 'teams', value: (p.teams || []).join(', '), 'aria-label': `Teams of ${p.name}`, placeholder: 'teams, e.g. orders, billing' });
    const form = h('form', { class: 'teams-form' }, input, h('button', { class: 'btn', type: 'submit' }, 'Save teams'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const teams = [...new Set(input.value.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean))];
      const bad = teams.find((t) => !TEAM_RE.test(t));
      if (bad !== undefined) return toast(`“${bad}” is not a team name: use a-z, 0-9, _ and - (at most 32).`);
      if (teams.length > MAX_TEAMS) return toast(`An agent is in at most ${MAX_TEAMS} teams.`);
      try {
        const agent = await api('PATCH', `/api/agents/${p.agent_id}`, { teams });
        const known = state.presence.get(agent.id);
        if (known) known.teams = agent.teams;
        input.blur();
        toast(`Teams of ${agent.name} saved.`);
        renderTeam();
        renderTransferOptions();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        toast(`Could not save teams: ${err.message}`);
      }
    });
    return form;
  }

  /** Admins: deletes another agent (DELETE /api/agents/{id}) after a confirm; their open conversations go back to the queue. */
  function deleteAgentButton(p) {
    const button = h('button', { class: 'btn danger', type: 'button', 'aria-label': `Delete ${p.name}` }, 'Delete');
    button.addEventListener('click', async () => {
      if (!confirm(`Delete ${p.name}? They are signed out at once and their open conversations go back to the queue. This cannot be undone.`)) return;
      try {
        await api('DELETE', `/api/agents/${p.agent_id}`);
        state.presence.delete(p.agent_id);
        toast(`${p.name} deleted.`);
        renderTeam();
        renderTransferOptions();
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        toast(`Could not delete ${p.name}: ${err.message}`);
      }
    });
    return button;
  }

  // ---------------------------------------------------------------- saved replies

  /** Fetches the saved replies (GET /api/saved-replies); redraws the dashboard's list. */
  async function loadReplies() {
    try {
      const data = await api('GET', '/api/saved-replies');
      state.replies = data.replies || [];
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      state.replies = state.replies || [];
    }
    if (state.view === 'dashboard') renderReplies();
    return state.replies;
  }

  /** The shortcut being typed as `/shortcut` alone in the reply box, or null. */
  function replyQuery() {
    const m = /^\/([a-z0-9_-]*)$/i.exec($('composer-input').value);
    return m ? m[1].toLowerCase() : null;
  }

  /** Offers the saved replies whose shortcut starts with what follows the `/`. */
  function updatePicker() {
    const q = replyQuery();
    if (q === null) return hidePicker();
    if (state.replies === null) {
      loadReplies().then(() => replyQuery() !== null && updatePicker());
      return undefined;
    }
    const items = state.replies.filter((r) => r.shortcut.startsWith(q)).slice(0, 8);
    state.picker = { items, active: 0 };
    renderPicker(items.length ? null : state.replies.length ? `No saved reply starts with “${q}”.` : 'No saved replies yet.');
    return undefined;
  }

  function renderPicker(empty) {
    const picker = $('reply-picker');
    const input = $('composer-input');
    const { items, active } = state.picker;
    const options = items.map((r, i) => {
      const li = h(
        'li',
        { role: 'option', id: 'reply-option-' + r.id, 'aria-selected': i === active ? 'true' : 'false', 'data-shortcut': r.shortcut },
        h('span', { class: 'shortcut' }, '/' + r.shortcut),
        h('span', { class: 'preview' }, r.text),
      );
      // mousedown, not click: the reply box must not lose focus first.
      li.addEventListener('mousedown', (ev) => {
        ev.preventDefault();
        insertReply(r);
      });
      return li;
    });
    picker.replaceChildren(...(empty ? [h('li', { class: 'muted', 'aria-disabled': 'true' }, empty)] : options));
    picker.hidden = false;
    if (items[active]) input.setAttribute('aria-activedescendant', 'reply-option-' + items[active].id);
    else input.removeAttribute('aria-activedescendant');
  }

  function hidePicker() {
    $('reply-picker').hidden = true;
    state.picker = { items: [], active: 0 };
    $('composer-input').removeAttribute('aria-activedescendant');
  }

  /** Puts a saved reply's text in the reply box (as text), ready to edit or send. */
  function insertReply(r) {
    const input = $('composer-input');
    input.value = r.text;
    hidePicker();
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    noteTyping();
  }

  /** The picker's keys (arrows, Enter or Tab to insert, Escape); true when the key was one of them. */
  function pickerKey(ev) {
    if ($('reply-picker').hidden) return false;
    const { items, active } = state.picker;
    if (ev.key === 'Escape') {
      hidePicker();
      return true;
    }
    if (!items.length) return false;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      state.picker.active = (active + (ev.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      renderPicker(null);
      return true;
    }
    if ((ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) || ev.key === 'Tab') {
      insertReply(items[active]);
      return true;
    }
    return false;
  }

  /** The dashboard's list; admins also get the add form and delete buttons. */
  function renderReplies() {
    const admin = state.me && state.me.role === 'admin';
    $('reply-form').hidden = !admin;
    const items = (state.replies || []).map((r) => {
      const li = h('li', { 'data-reply': String(r.id) }, h('span', { class: 'shortcut' }, '/' + r.shortcut), h('span', { class: 'text' }, r.text));
      if (admin) li.append(deleteReplyButton(r));
      return li;
    });
    const none = admin ? 'No saved replies yet: add the answers you type most.' : 'No saved replies yet.';
    $('reply-list').replaceChildren(...(items.length ? items : [h('li', { class: 'muted' }, none)]));
  }

  async function addReply(ev) {
    ev.preventDefault();
    const shortcut = $('reply-shortcut').value.trim().toLowerCase();
    const text = $('reply-text').value;
    try {
      await api('POST', '/api/saved-replies', { shortcut, text });
      $('reply-form').reset();
      toast(`Saved reply /${shortcut} added.`);
      await loadReplies();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      toast(`Could not add /${shortcut}: ${err.message}`);
    }
  }

  function deleteReplyButton(r) {
    const button = h('button', { class: 'btn danger', type: 'button', 'aria-label': `Delete saved reply /${r.shortcut}` }, 'Delete');
    button.addEventListener('click', async () => {
      if (!confirm(`Delete the saved reply /${r.shortcut}?`)) return;
      try {
        await api('DELETE', `/api/saved-replies/${r.id}`);
        toast(`Saved reply /${r.shortcut} deleted.`);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        toast(`Could not delete /${r.shortcut}: ${err.message}`);
      }
      await loadReplies();
    });
    return button;
  }

  let statsTimer = 0;
  function showView(view) {
    state.view = view;
    for (const b of document.querySelectorAll('.nav-item')) b.setAttribute('aria-current', b.dataset.view === view ? 'page' : 'false');
    $('view-inbox').hidden = view !== 'inbox';
    $('view-customers').hidden = view !== 'customers';
    $('view-dashboard').hidden = view !== 'dashboard';
    clearInterval(statsTimer);
    if (view === 'customers') loadCustomers(false);
    if (view === 'dashboard') {
      loadStats();
      loadReplies();
      statsTimer = setInterval(() => !document.hidden && loadStats(), 30000);
    }
    if (view === 'inbox' && state.selected) markRead(state.selected);
  }

  // ---------------------------------------------------------------- sign in / out

  function showLogin(message) {
    $('app').hidden = true;
    $('login').hidden = false;
    const err = $('login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('login-email').focus();
  }

  function startApp() {
    $('login').hidden = true;
    $('app').hidden = false;
    state.me = load('agent');
    renderMe();
    renderLists();
    renderThread();
    showView('inbox');
    conn.connect();
  }

  function signOut(message) {
    const token = state.token;
    conn.stop();
    state.token = null;
    save('token', null);
    save('selected', null);
    // Nothing of this agent's stays for the next one in this tab: unsent
    // replies, read marks, cached customers, notes.
    for (const m of [state.convs, state.msgs, state.loaded, state.pending, state.unread, state.readSent, state.preview, state.hasOlder, state.customers, state.presence, state.notes]) m.clear();
    for (const t of state.typing.values()) clearTimeout(t.timer);
    state.typing.clear();
    state.selected = null;
    state.me = null;
    state.replies = null;
    setNoteMode(false);
    $('composer-input').value = '';
    if (token && !message) {
      fetch('/api/logout', { method: 'POST', headers: { Authorization: 'Bearer ' + token } }).catch(() => {});
    }
    showLogin(message);
  }

  async function login(ev) {
    ev.preventDefault();
    const button = $('login-submit');
    button.disabled = true;
    try {
      const data = await api('POST', '/api/login', { email: $('login-email').value.trim(), password: $('login-password').value });
      state.token = data.token;
      save('token', data.token);
      save('agent', data.agent);
      $('login-password').value = '';
      startApp();
    } catch (err) {
      if (!(err instanceof ApiError)) {
        showLogin('Cannot reach the server.');
      } else {
        const why = { 401: 'Wrong email or password.', 403: 'This account has been disabled.' }[err.status];
        showLogin(why || err.message);
      }
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  function wire() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => signOut(null));
    for (const b of document.querySelectorAll('.nav-item')) b.addEventListener('click', () => showView(b.dataset.view));
    $('me-status').addEventListener('change', (ev) => {
      save('status', ev.target.value);
      conn.send({ type: 'set_status', status: ev.target.value });
    });
    $('me-capacity').addEventListener('change', (ev) => {
      const capacity = Math.max(0, Math.min(100, parseInt(ev.target.value, 10) || 0));
      conn.send({ type: 'set_capacity', capacity });
    });
    $('claim').addEventListener('click', () => state.selected && conn.send({ type: 'claim', conversation_id: state.selected }));
    $('close-conv').addEventListener('click', () => state.selected && conn.send({ type: 'close', conversation_id: state.selected }));
    $('transfer').addEventListener('click', () => {
      const frame = state.selected ? transferFrame($('transfer-to').value, state.selected) : null;
      if (!frame) return toast('Pick an agent or a team to transfer to.');
      conn.send(frame);
    });
    const input = $('composer-input');
    const submit = () => {
      const text = input.value.trim();
      if (!text) return;
      if ([...text].length > MAX_TEXT_CHARS) return toast(`Replies can be at most ${MAX_TEXT_CHARS} characters.`);
      input.value = '';
      if (state.noteMode) sendNote(text);
      else sendReply(text);
    };
    $('composer').addEventListener('submit', (ev) => {
      ev.preventDefault();
      submit();
    });
    input.addEventListener('keydown', (ev) => {
      if (pickerKey(ev)) {
        ev.preventDefault();
        return;
      }
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        submit();
      }
    });
    input.addEventListener('input', noteTyping);
    input.addEventListener('input', updatePicker);
    input.addEventListener('blur', hidePicker);
    $('reply-form').addEventListener('submit', addReply);
    $('mode-reply').addEventListener('click', () => setNoteMode(false));
    $('mode-note').addEventListener('click', () => setNoteMode(true));
    $('thread-log').addEventListener('scroll', (ev) => {
      if (ev.target.scrollTop < 60) loadOlder();
    });
    $('customer-search').addEventListener('submit', (ev) => {
      ev.preventDefault();
      loadCustomers(false);
    });
    $('customers-more').addEventListener('click', () => loadCustomers(true));
    $('stats-refresh').addEventListener('click', loadStats);
  }

  wire();
  if (state.token) startApp();
  else showLogin(null);
})();
