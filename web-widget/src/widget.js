/*!
 * Switchboard visitor widget.
 *
 * Owns: the launcher button and chat panel a customer's site embeds with one tag,
 *   <script src="https://HOST/widget.js" data-site="shop" async></script>
 * and the visitor's side of the JSON wire protocol (protocol/src/*.rs) over
 * WebSocket at ws(s)://HOST/ws with subprotocol `switchboard.v1.json`.
 *
 * Hands off: routing, storage and NLP to the server; the host page talks to it
 * only through `window.Switchboard` (identify, reset, open, close, on, off).
 *
 * Optional attributes on the script tag:
 *   data-site     names this site's visitor token in localStorage (default "default")
 *   data-title    the panel's title (default "Chat with us")
 *   data-color    accent colour as #rgb or #rrggbb (default indigo)
 *   data-prechat  ask for name and email before the first message
 *
 * Everything is rendered with DOM APIs and textContent, never innerHTML, inside
 * an open shadow root so the host page's CSS cannot reach in and ours cannot leak out.
 */
(function () {
  'use strict';

  if (window.Switchboard && window.Switchboard.version) return; // loaded twice

  const script =
    document.currentScript || document.querySelector('script[src*="widget.js"][data-site]');
  const scriptUrl = new URL(script ? script.src : '/widget.js', location.href);
  const data = (script && script.dataset) || {};

  const config = {
    site: data.site || 'default',
    title: data.title || 'Chat with us',
    color: /^#[0-9a-f]{3}([0-9a-f]{3})?$/i.test(data.color || '') ? data.color : '#4f46e5',
    prechat: data.prechat !== undefined && data.prechat !== 'false',
    wsUrl: (scriptUrl.protocol === 'https:' ? 'wss://' : 'ws://') + scriptUrl.host + '/ws',
  };
  const SUBPROTOCOL = 'switchboard.v1.json';

  // Mirrors protocol/src/limits.rs.
  const MAX_TEXT_CHARS = 4000;
  const MAX_COMMENT_CHARS = 2000;
  const HISTORY_PAGE = 50;

  // Mirrors protocol/src/close.rs: which close codes mean "reconnect and resume".
  const UNAUTHORIZED = 4501;
  function shouldReconnect(code) {
    return [1001, 1006, 1011, 1012, 1013].includes(code) || (code >= 4000 && code <= 4499);
  }

  const TYPING_THROTTLE_MS = 3000; // resend `typing: true` at most this often
  const TYPING_IDLE_MS = 4000; // send `typing: false` after this long without a keystroke
  const TYPING_SHOWN_MS = 8000; // hide the other side's indicator if no `typing: false` comes

  // ---------------------------------------------------------------- storage

  /** localStorage under `switchboard.<site>.`, falling back to memory when it is blocked. */
  const store = (() => {
    const memory = new Map();
    const prefix = 'switchboard.' + config.site + '.';
    return {
      get(key) {
        try {
          const raw = localStorage.getItem(prefix + key);
          return raw === null ? null : JSON.parse(raw);
        } catch (_) {
          return memory.has(key) ? memory.get(key) : null;
        }
      },
      set(key, value) {
        memory.set(key, value);
        try {
          localStorage.setItem(prefix + key, JSON.stringify(value));
        } catch (_) {
          /* memory only */
        }
      },
      remove(key) {
        memory.delete(key);
        try {
          localStorage.removeItem(prefix + key);
        } catch (_) {
          /* memory only */
        }
      },
    };
  })();

  function newClientId() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16)); // also outside secure contexts
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // ---------------------------------------------------------------- DOM helpers

  /** `h('div', {class: 'x', 'aria-label': 'y'}, child, 'text')`: attributes only, text as text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) el.append(c);
    return el;
  }

  function svg(path, size) {
    const ns = 'http://www.w3.org/2000/svg';
    const el = document.createElementNS(ns, 'svg');
    el.setAttribute('viewBox', '0 0 24 24');
    el.setAttribute('width', String(size || 24));
    el.setAttribute('height', String(size || 24));
    el.setAttribute('aria-hidden', 'true');
    el.setAttribute('focusable', 'false');
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', path);
    p.setAttribute('fill', 'currentColor');
    el.append(p);
    return el;
  }
  const ICON_CHAT =
    'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2zm3 6v2h2v-2H7zm4 0v2h2v-2h-2zm4 0v2h2v-2h-2z';
  const ICON_CLOSE =
    'M18.3 5.7 12 12l6.3 6.3-1.4 1.4L10.6 13.4 4.3 19.7 2.9 18.3 9.2 12 2.9 5.7 4.3 4.3l6.3 6.3 6.3-6.3z';
  const ICON_SEND = 'M3 20.5 21 12 3 3.5v6.6l12.9 1.9L3 13.9z';
  const ICON_DOWN = 'M7.4 8.6 12 13.2l4.6-4.6L18 10l-6 6-6-6z';

  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  /** Appends `text` to `el` as text nodes, with http(s) URLs as safe links. */
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

  // ---------------------------------------------------------------- connection

  /**
   * One WebSocket at a time, reopened with jittered exponential backoff.
   * It knows nothing of the protocol beyond JSON framing and close codes.
   */
  class Connection {
    constructor(events) {
      this.events = events; // { open(), frame(msg), closed(code) }
      this.ws = null;
      this.attempt = 0;
      this.timer = 0;
    }

    get isOpen() {
      return !!this.ws && this.ws.readyState === WebSocket.OPEN;
    }

    connect() {
      clearTimeout(this.timer);
      this.timer = 0;
      if (this.ws) return;
      let ws;
      try {
        ws = new WebSocket(config.wsUrl, SUBPROTOCOL);
      } catch (_) {
        this.events.closed(1006);
        return;
      }
      this.ws = ws;
      ws.onopen = () => this.events.open();
      ws.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return;
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch (_) {
          return;
        }
        if (msg && typeof msg.type === 'string') this.events.frame(msg);
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.events.closed(ev.code);
      };
    }

    send(frame) {
      if (!this.isOpen) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    /** Full jitter between half and all of min(30 s, 0.5 s × 2^attempt). */
    retryLater() {
      if (this.timer || this.ws) return;
      const ceiling = Math.min(30000, 500 * 2 ** this.attempt);
      this.attempt = Math.min(this.attempt + 1, 16);
      const delay = ceiling / 2 + Math.random() * (ceiling / 2);
      this.timer = setTimeout(() => this.connect(), delay);
    }

    retryNow() {
      if (this.ws) return;
      clearTimeout(this.timer);
      this.timer = 0;
      this.connect();
    }

    welcomed() {
      this.attempt = 0;
    }

    stop(code) {
      clearTimeout(this.timer);
      this.timer = 0;
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close(code || 1000);
    }
  }

  // ---------------------------------------------------------------- styles

  const CSS = `
:host { all: initial; }
*, *::before, *::after { box-sizing: border-box; }
.root {
  --accent: ${config.color};
  --ink: #1f2330; --muted: #6b7185; --line: #e6e8ef; --bg: #ffffff; --soft: #f4f5f9;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink);
  position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
  display: flex; flex-direction: column; align-items: flex-end; gap: 12px;
}
button, textarea, input { font: inherit; color: inherit; }
button { cursor: pointer; }
:focus-visible { outline: 3px solid color-mix(in srgb, var(--accent) 55%, white); outline-offset: 2px; }
.launcher {
  width: 60px; height: 60px; border-radius: 50%; border: 0; background: var(--accent); color: #fff;
  display: grid; place-items: center; box-shadow: 0 6px 24px rgba(20, 20, 50, .28); position: relative;
  transition: transform .15s ease;
}
.launcher:hover { transform: scale(1.05); }
.badge {
  position: absolute; top: -2px; right: -2px; min-width: 22px; height: 22px; padding: 0 6px; border-radius: 11px;
  background: #e5484d; color: #fff; font-size: 12px; font-weight: 700; line-height: 22px; text-align: center;
  border: 2px solid #fff;
}
.panel {
  width: 370px; height: min(600px, calc(100vh - 110px)); background: var(--bg); border-radius: 16px;
  box-shadow: 0 12px 48px rgba(20, 20, 50, .25); display: flex; flex-direction: column; overflow: hidden;
  border: 1px solid var(--line);
}
.panel[hidden], [hidden] { display: none !important; }
header {
  background: var(--accent); color: #fff; padding: 14px 12px 14px 18px; display: flex; align-items: center; gap: 8px;
}
.heading { flex: 1; min-width: 0; }
.title { font-size: 16px; font-weight: 650; margin: 0; }
.status { font-size: 12.5px; opacity: .9; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.icon-btn {
  background: transparent; border: 0; color: inherit; border-radius: 8px; padding: 6px; display: grid; place-items: center;
}
.icon-btn:hover { background: rgba(255,255,255,.16); }
.text-btn {
  background: rgba(255,255,255,.16); border: 0; color: #fff; border-radius: 8px; padding: 5px 10px; font-size: 12.5px;
}
.text-btn:hover { background: rgba(255,255,255,.26); }
.banner { background: #fff4e5; color: #8a4b00; font-size: 13px; padding: 8px 14px; border-bottom: 1px solid #f5dfbf; }
.banner.error { background: #fdecec; color: #9b1c1c; border-color: #f5c9c9; }
.queue { background: var(--soft); color: var(--ink); font-size: 13px; padding: 9px 14px; border-bottom: 1px solid var(--line); }
.queue strong { color: var(--accent); }
.log { flex: 1; overflow-y: auto; padding: 14px 14px 6px; display: flex; flex-direction: column; gap: 8px; background: #fbfbfd; }
.older { align-self: center; font-size: 12px; color: var(--muted); padding: 2px 0 6px; }
.empty { margin: auto 8px; text-align: center; color: var(--muted); }
.empty strong { display: block; color: var(--ink); font-size: 16px; margin-bottom: 4px; }
.msg { display: flex; flex-direction: column; max-width: 82%; align-items: flex-start; }
.msg.mine { align-self: flex-end; align-items: flex-end; }
.msg.system { align-self: center; max-width: 90%; align-items: center; }
.who { font-size: 12px; color: var(--muted); margin: 0 4px 2px; display: flex; gap: 6px; align-items: center; }
.tag { font-size: 10.5px; font-weight: 700; letter-spacing: .03em; text-transform: uppercase; padding: 1px 6px; border-radius: 6px; }
.tag.agent { background: #e8f3ec; color: #1c6b3a; }
.tag.bot { background: #eef0ff; color: #3b3fb6; }
.bubble {
  padding: 8px 12px; border-radius: 16px; background: var(--soft); white-space: pre-wrap; overflow-wrap: anywhere;
  border-bottom-left-radius: 5px;
}
.msg.bot .bubble { background: #eef0ff; }
.msg.mine .bubble { background: var(--accent); color: #fff; border-bottom-left-radius: 16px; border-bottom-right-radius: 5px; }
.msg.mine .bubble a { color: #fff; }
.bubble a { color: var(--accent); text-decoration: underline; }
.msg.system .bubble { background: transparent; color: var(--muted); font-size: 12.5px; padding: 2px 8px; text-align: center; }
.meta { font-size: 11.5px; color: var(--muted); margin: 2px 6px 0; }
.msg.cont { margin-top: -4px; }
.msg.cont .who { display: none; }
.msg.pending .bubble { opacity: .7; }
.msg.failed .bubble { background: #fdecec; color: #9b1c1c; }
.retry { background: none; border: 0; color: #9b1c1c; text-decoration: underline; font-size: 11.5px; padding: 0; }
.typing { font-size: 12.5px; color: var(--muted); padding: 2px 18px 6px; background: #fbfbfd; display: flex; gap: 8px; align-items: center; }
.dots { display: inline-flex; gap: 3px; }
.dots i { width: 6px; height: 6px; border-radius: 50%; background: var(--muted); animation: blink 1.2s infinite ease-in-out; }
.dots i:nth-child(2) { animation-delay: .2s; } .dots i:nth-child(3) { animation-delay: .4s; }
@keyframes blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: 1; } }
@media (prefers-reduced-motion: reduce) { .dots i { animation: none; opacity: .6; } .launcher { transition: none; } }
.handoff { padding: 6px 14px; background: #fbfbfd; }
.handoff button { border: 1px solid var(--accent); color: var(--accent); background: #fff; border-radius: 999px; padding: 5px 12px; font-size: 13px; }
.card { margin: 10px 14px; padding: 14px; border: 1px solid var(--line); border-radius: 12px; background: #fff; }
.card h3 { margin: 0 0 4px; font-size: 15px; }
.card p { margin: 0 0 10px; color: var(--muted); font-size: 13px; }
.stars { display: flex; gap: 4px; margin-bottom: 10px; }
.star { background: none; border: 0; font-size: 28px; line-height: 1; color: #d0d3de; padding: 2px; border-radius: 6px; }
.star[aria-checked="true"], .star.lit { color: #f5a524; }
label.field { display: block; font-size: 12.5px; color: var(--muted); margin-bottom: 8px; }
label.field input, label.field textarea, .card textarea {
  display: block; width: 100%; margin-top: 3px; border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px;
  background: #fff; resize: vertical;
}
.primary { background: var(--accent); color: #fff; border: 0; border-radius: 8px; padding: 8px 14px; font-weight: 600; }
.primary:disabled { opacity: .5; cursor: default; }
.secondary { background: none; border: 0; color: var(--muted); padding: 8px 10px; }
.actions { display: flex; gap: 8px; align-items: center; }
.composer { display: flex; gap: 8px; align-items: flex-end; padding: 10px 12px; border-top: 1px solid var(--line); background: #fff; }
.composer textarea {
  flex: 1; resize: none; border: 1px solid var(--line); border-radius: 12px; padding: 9px 12px; max-height: 120px;
  min-height: 40px; outline: none; background: var(--soft);
}
.composer textarea:focus { border-color: var(--accent); background: #fff; }
.send { width: 40px; height: 40px; border-radius: 50%; border: 0; background: var(--accent); color: #fff; display: grid; place-items: center; flex: none; }
.send:disabled { opacity: .45; cursor: default; }
.foot { font-size: 11px; color: var(--muted); text-align: center; padding: 0 0 8px; background: #fff; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 480px) {
  .root { right: 12px; bottom: 12px; }
  .root.open { inset: 0; right: 0; bottom: 0; }
  .root.open .launcher { display: none; }
  .panel { width: 100vw; height: 100%; height: 100dvh; border-radius: 0; border: 0; }
  .composer textarea { font-size: 16px; } /* no zoom-on-focus on iOS */
}
`;

  // ---------------------------------------------------------------- widget

  /**
   * The visitor's state and its view. State: the current conversation, its
   * messages by seq, and the sends not yet acknowledged. The view is rebuilt
   * piecewise from that state; nothing is ever parsed as HTML.
   */
  class Widget {
    constructor() {
      this.listeners = { message: new Set(), open: new Set(), close: new Set() };
      this.token = store.get('token');
      this.conversation = null; // ConversationView
      this.messages = new Map(); // seq -> Message
      this.rows = new Map(); // seq -> element
      this.pending = new Map(); // client_id -> { frame, el, state }
      this.loadedInitialPage = false;
      this.hasOlder = false;
      this.loadingOlder = false;
      this.readSent = 0;
      this.unread = 0;
      this.welcomed = false;
      this.terminal = false;
      this.identity = null; // Identify frame to send after the next welcome
      this.user = null; // {user_id, user_hash} of a signed-in user, sent in every hello
      this.typingSentAt = 0;
      this.typingIdleTimer = 0;
      this.typingShownTimer = 0;
      this.rated = false;
      this.ratingToSend = null; // a rate frame given while offline, sent after the next welcome
      this.everConnected = false;
      this.connection = new Connection({
        open: () => this.onOpen(),
        frame: (msg) => this.onFrame(msg),
        closed: (code) => this.onClosed(code),
      });
      this.build();
      if (this.token) this.connection.connect(); // a returning visitor: resume at once
      window.addEventListener('online', () => this.connection.retryNow());
      window.addEventListener('offline', () => this.onOffline());
      document.addEventListener('visibilitychange', () => this.markRead());
    }

    // ---- view construction

    build() {
      const host = h('div', { id: 'switchboard-widget', 'data-switchboard': config.site });
      const shadow = host.attachShadow({ mode: 'open' });
      shadow.append(h('style', null, CSS));

      this.badge = h('span', { class: 'badge', hidden: true, 'aria-hidden': 'true' });
      this.launcher = h(
        'button',
        {
          class: 'launcher',
          type: 'button',
          'aria-label': 'Open chat',
          'aria-expanded': 'false',
          'aria-controls': 'sb-panel',
          onclick: () => (this.isOpen ? this.close() : this.open()),
        },
        svg(ICON_CHAT, 28),
        this.badge,
      );

      this.statusLine = h('div', { class: 'status', 'aria-live': 'polite' }, 'We usually reply in a few minutes');
      this.endButton = h(
        'button',
        { class: 'text-btn', type: 'button', hidden: true, onclick: () => this.endConversation() },
        'End chat',
      );
      const header = h(
        'header',
        null,
        h('div', { class: 'heading' }, h('h2', { class: 'title', id: 'sb-title' }, config.title), this.statusLine),
        this.endButton,
        h(
          'button',
          { class: 'icon-btn', type: 'button', 'aria-label': 'Minimise chat', onclick: () => this.close() },
          svg(ICON_DOWN, 22),
        ),
      );

      this.banner = h('div', { class: 'banner', role: 'status', hidden: true });
      this.queueNote = h('div', { class: 'queue', role: 'status', hidden: true });
      this.older = h('div', { class: 'older', hidden: true }, 'Loading earlier messages…');
      this.empty = h(
        'div',
        { class: 'empty' },
        h('strong', null, 'Hi there!'),
        'Ask us anything — we are happy to help.',
      );
      this.log = h(
        'div',
        { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation', tabindex: '0' },
        this.older,
        this.empty,
      );
      this.log.addEventListener('scroll', () => {
        if (this.log.scrollTop < 40) this.loadOlder();
      });

      this.typingText = h('span');
      this.typing = h(
        'div',
        { class: 'typing', hidden: true, 'aria-live': 'polite' },
        h('span', { class: 'dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
        this.typingText,
      );
      this.handoff = h(
        'div',
        { class: 'handoff', hidden: true },
        h('button', { type: 'button', onclick: () => this.requestPerson() }, 'Talk to a person'),
      );

      this.rating = this.buildRating();
      this.prechat = this.buildPrechat();

      this.input = h('textarea', {
        rows: '1',
        placeholder: 'Write a message…',
        'aria-label': 'Message',
        dir: 'auto',
        maxlength: String(MAX_TEXT_CHARS),
      });
      this.input.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          this.submitComposer();
        }
      });
      this.input.addEventListener('input', () => {
        this.autosize();
        this.noteTyping();
      });
      this.sendButton = h('button', { class: 'send', type: 'submit', 'aria-label': 'Send message' }, svg(ICON_SEND, 20));
      this.composer = h(
        'form',
        {
          class: 'composer',
          onsubmit: (ev) => {
            ev.preventDefault();
            this.submitComposer();
          },
        },
        this.input,
        this.sendButton,
      );

      this.panel = h(
        'section',
        {
          class: 'panel',
          id: 'sb-panel',
          role: 'dialog',
          'aria-labelledby': 'sb-title',
          hidden: true,
        },
        header,
        this.banner,
        this.queueNote,
        this.log,
        this.typing,
        this.handoff,
        this.rating,
        this.prechat,
        this.composer,
        h('div', { class: 'foot' }, 'Powered by Switchboard'),
      );
      this.panel.addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape') {
          ev.preventDefault();
          this.close();
        }
      });

      this.root = h('div', { class: 'root' }, this.panel, this.launcher);
      shadow.append(this.root);
      const mount = () => document.body.append(host);
      if (document.body) mount();
      else document.addEventListener('DOMContentLoaded', mount);
    }

    buildRating() {
      this.score = 0;
      this.stars = [];
      const group = h('div', { class: 'stars', role: 'radiogroup', 'aria-label': 'Rate this conversation' });
      for (let n = 1; n <= 5; n++) {
        const star = h(
          'button',
          {
            class: 'star',
            type: 'button',
            role: 'radio',
            'aria-checked': 'false',
            'aria-label': n + (n === 1 ? ' star' : ' stars'),
            'data-score': String(n),
            tabindex: n === 1 ? '0' : '-1',
            onclick: () => this.pickScore(n),
          },
          '★',
        );
        star.addEventListener('keydown', (ev) => {
          const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[ev.key];
          if (!step) return;
          ev.preventDefault();
          const next = Math.min(5, Math.max(1, (this.score || n) + step));
          this.pickScore(next);
          this.stars[next - 1].focus();
        });
        this.stars.push(star);
        group.append(star);
      }
      this.comment = h('textarea', {
        rows: '2',
        placeholder: 'Anything we could do better? (optional)',
        'aria-label': 'Comment',
        maxlength: String(MAX_COMMENT_CHARS),
      });
      this.rateButton = h('button', { class: 'primary', type: 'submit', disabled: true }, 'Send rating');
      this.ratingBody = h(
        'div',
        null,
        h('h3', null, 'How did we do?'),
        h('p', null, 'This conversation has ended. Your rating helps us improve.'),
        group,
        this.comment,
        h('div', { class: 'actions', style: 'margin-top:10px' }, this.rateButton),
      );
      this.ratingThanks = h(
        'div',
        { hidden: true },
        h('h3', null, 'Thank you!'),
        h('p', { style: 'margin:0' }, 'Write again any time to pick the conversation up.'),
      );
      return h(
        'form',
        {
          class: 'card rating',
          hidden: true,
          'aria-label': 'Rate this conversation',
          onsubmit: (ev) => {
            ev.preventDefault();
            this.submitRating();
          },
        },
        this.ratingBody,
        this.ratingThanks,
      );
    }

    buildPrechat() {
      this.prechatName = h('input', { type: 'text', name: 'name', autocomplete: 'name', maxlength: '200' });
      this.prechatEmail = h('input', { type: 'email', name: 'email', autocomplete: 'email', maxlength: '200' });
      return h(
        'form',
        {
          class: 'card prechat',
          hidden: true,
          'aria-label': 'Before we start',
          onsubmit: (ev) => {
            ev.preventDefault();
            this.submitPrechat(false);
          },
        },
        h('h3', null, 'Before we start'),
        h('p', null, 'So we can follow up if you leave the page.'),
        h('label', { class: 'field' }, 'Name', this.prechatName),
        h('label', { class: 'field' }, 'Email', this.prechatEmail),
        h(
          'div',
          { class: 'actions' },
          h('button', { class: 'primary', type: 'submit' }, 'Start chat'),
          h('button', { class: 'secondary', type: 'button', onclick: () => this.submitPrechat(true) }, 'Skip'),
        ),
      );
    }

    // ---- host API

    get isOpen() {
      return !this.panel.hidden;
    }

    open() {
      if (this.isOpen) return;
      this.panel.hidden = false;
      this.root.classList.add('open');
      this.launcher.setAttribute('aria-expanded', 'true');
      this.launcher.setAttribute('aria-label', 'Close chat');
      if (!this.connection.ws && !this.terminal) this.connection.retryNow();
      this.refreshPanels();
      this.scrollToEnd();
      const focusTarget = !this.prechat.hidden ? this.prechatName : this.input;
      setTimeout(() => focusTarget.focus(), 0);
      this.markRead();
      this.emit('open', {});
    }

    close() {
      if (!this.isOpen) return;
      const hadFocus = this.panel.contains(this.panel.getRootNode().activeElement);
      this.panel.hidden = true;
      this.root.classList.remove('open');
      this.launcher.setAttribute('aria-expanded', 'false');
      this.launcher.setAttribute('aria-label', 'Open chat');
      if (hadFocus) this.launcher.focus();
      this.emit('close', {});
    }

    on(event, fn) {
      if (!this.listeners[event]) throw new Error('Switchboard.on: unknown event ' + event);
      if (typeof fn === 'function') this.listeners[event].add(fn);
      return () => this.listeners[event].delete(fn);
    }

    emit(event, payload) {
      for (const fn of this.listeners[event]) {
        try {
          fn(payload);
        } catch (err) {
          setTimeout(() => {
            throw err;
          }); // report, but never break the widget
        }
      }
    }

    /** `identify({id, name, email, phone, company, attributes, hash})`; `id` becomes `user_id`. */
    identify(profile) {
      const p = profile || {};
      const str = (v) => (v === undefined || v === null || v === '' ? null : String(v));
      const attributes = {};
      for (const [k, v] of Object.entries(p.attributes || {})) {
        if (v !== undefined && v !== null) attributes[String(k)] = String(v);
      }
      this.identity = {
        type: 'identify',
        user_id: str(p.id !== undefined ? p.id : p.user_id),
        name: str(p.name),
        email: str(p.email),
        phone: str(p.phone),
        company: str(p.company),
        attributes,
        hash: str(p.hash),
      };
      if (this.identity.name || this.identity.email) store.set('prechat', true);
      const user = this.identity.user_id;
      if (user && this.identity.hash) {
        // A signed-in user (identity verification): say so in the hello, so the
        // server hands us their history from any device. Reconnect if it changed.
        const changed = !this.user || this.user.user_id !== user || this.user.user_hash !== this.identity.hash;
        this.user = { user_id: user, user_hash: this.identity.hash };
        if (changed && this.connection.ws) {
          this.welcomed = false;
          this.connection.stop(1000);
        }
      }
      if (this.welcomed) this.flushIdentity();
      else if (!this.terminal) this.connection.retryNow();
    }

    /** Forgets the visitor and the signed-in user (e.g. when the user signs out of the host site). */
    reset() {
      this.user = null;
      this.identity = null;
      this.welcomed = false;
      this.terminal = false;
      this.connection.stop(1000);
      this.forgetVisitor();
      this.customerId = null;
      if (this.isOpen) this.connection.retryNow();
    }

    flushIdentity() {
      if (this.identity && this.connection.send(this.identity)) this.identity = null;
    }

    // ---- connection events

    onOpen() {
      const resume = [];
      const point = this.resumePoint();
      if (point) resume.push(point);
      this.connection.send({
        type: 'visitor_hello',
        token: this.token || null,
        resume,
        page_url: location.href.slice(0, 512),
        user_id: this.user ? this.user.user_id : null,
        user_hash: this.user ? this.user.user_hash : null,
      });
    }

    onClosed(code) {
      this.welcomed = false;
      this.everConnected = true; // from now on a lost connection shows the offline banner
      this.setTyping(null);
      if (code === UNAUTHORIZED && this.token) {
        // Our token expired or was revoked: forget it and start as a new visitor.
        this.forgetVisitor();
        this.connection.retryNow();
      } else if (shouldReconnect(code)) {
        this.connection.retryLater();
      } else {
        this.terminal = true;
      }
      this.refreshBanner();
    }

    /**
     * The browser lost its network. The socket may stay half-open for minutes
     * without a close event, so drop it now: the visitor sees the offline
     * banner and what they write waits; `online` reconnects and resumes.
     */
    onOffline() {
      if (!this.connection.ws) return;
      this.connection.stop(1000);
      this.onClosed(1006);
    }

    forgetVisitor() {
      this.token = null;
      store.remove('token');
      store.remove('resume');
      this.conversation = null;
      this.messages.clear();
      for (const el of this.rows.values()) el.remove();
      this.rows.clear();
      this.loadedInitialPage = false;
      this.hasOlder = false;
      this.readSent = 0;
      this.unread = 0; // the forgotten conversation's replies are not this visitor's to read
      this.refreshBadge();
      this.setTyping(null);
      this.refreshPanels();
    }

    onFrame(msg) {
      switch (msg.type) {
        case 'visitor_welcome':
          return this.onWelcome(msg);
        case 'ack':
          return this.onAck(msg);
        case 'message':
          return this.onMessage(msg, true);
        case 'typing':
          return this.onTyping(msg);
        case 'read':
          return this.onRead(msg);
        case 'conversation':
          return this.onConversation(msg);
        case 'queue_position':
          return this.onQueuePosition(msg);
        case 'history':
          return this.onHistory(msg);
        case 'error':
          return this.onError(msg);
        default:
          return undefined; // agent-only or future types
      }
    }

    onWelcome(msg) {
      this.welcomed = true;
      this.everConnected = true;
      this.connection.welcomed();
      // Signed in as someone else than this browser's visitor: show their conversation, not ours.
      if (this.customerId != null && this.customerId !== msg.customer_id) this.forgetVisitor();
      this.token = msg.token;
      store.set('token', msg.token);
      this.customerId = msg.customer_id;
      const newest = (msg.conversations || [])[0];
      if (newest) this.adoptConversation(newest);
      if (this.conversation && !this.loadedInitialPage) {
        this.loadedInitialPage = true;
        this.requestHistory({ before: this.lowestSeq() || null });
      }
      this.flushIdentity();
      this.flushRating();
      for (const p of this.pending.values()) if (p.state !== 'failed') this.transmit(p);
      this.refreshBanner();
      this.refreshPanels();
      this.markRead();
    }

    /** Makes `view` the shown conversation if it is the current one or newer. */
    adoptConversation(view) {
      const current = this.conversation;
      if (current && view.id < current.id) return false;
      if (current && view.id !== current.id) {
        // A newer conversation replaces the shown one.
        this.messages.clear();
        for (const el of this.rows.values()) el.remove();
        this.rows.clear();
        this.readSent = 0;
        this.loadedInitialPage = true; // a new conversation starts empty; live events fill it
        this.hasOlder = false;
      }
      this.conversation = Object.assign({}, current && current.id === view.id ? current : {}, view);
      if (current && current.id === view.id) {
        // Read marks and rating only move forward.
        this.conversation.agent_read_seq = Math.max(current.agent_read_seq || 0, view.agent_read_seq || 0);
        this.conversation.visitor_read_seq = Math.max(current.visitor_read_seq || 0, view.visitor_read_seq || 0);
      }
      const sameClosed = current && current.id === view.id && view.status === 'closed';
      this.rated = !!this.conversation.rating || (sameClosed && this.rated);
      this.saveResume();
      return true;
    }

    onAck(msg) {
      const p = this.pending.get(msg.client_id);
      if (!this.conversation || this.conversation.id !== msg.conversation_id) {
        if (!this.conversation || msg.conversation_id > this.conversation.id) {
          this.adoptConversation({
            id: msg.conversation_id,
            status: null,
            last_seq: msg.seq,
            agent_read_seq: 0,
            visitor_read_seq: 0,
            rating: null,
          });
        }
      }
      if (!p) return;
      this.pending.delete(msg.client_id);
      if (!this.messages.has(msg.seq)) {
        this.addMessage({
          id: msg.message_id,
          conversation_id: msg.conversation_id,
          seq: msg.seq,
          author: { kind: 'visitor', id: this.customerId || 0, name: 'You' },
          text: p.frame.text,
          client_id: msg.client_id,
          sent_at: p.sentAt,
          analysis: null,
        });
        this.emit('message', Object.freeze(Object.assign({}, this.messages.get(msg.seq))));
      }
      p.el.remove();
      this.afterMessages();
    }

    onMessage(m, live) {
      if (!this.conversation || m.conversation_id !== this.conversation.id) {
        if (this.conversation && m.conversation_id < this.conversation.id) return;
        this.adoptConversation({
          id: m.conversation_id,
          status: null,
          last_seq: m.seq,
          agent_read_seq: 0,
          visitor_read_seq: 0,
          rating: null,
        });
      }
      if (m.client_id && this.pending.has(m.client_id)) {
        this.pending.get(m.client_id).el.remove();
        this.pending.delete(m.client_id);
      }
      const isNew = !this.messages.has(m.seq);
      const gap = live && this.loadedInitialPage && this.highestSeq() > 0 && m.seq > this.highestSeq() + 1;
      this.addMessage(m);
      if (m.author.kind !== 'visitor') this.setTyping(null);
      if (gap) this.requestHistory({ after: this.contiguousSeq() });
      if (isNew && live) {
        this.emit('message', Object.freeze(Object.assign({}, m)));
        if (m.author.kind !== 'visitor' && !this.canSee()) {
          this.unread += 1;
          this.refreshBadge();
        }
      }
      this.afterMessages();
    }

    onTyping(msg) {
      if (!this.conversation || msg.conversation_id !== this.conversation.id) return;
      if (msg.author.kind === 'visitor') return; // our own other tab
      this.setTyping(msg.typing ? msg.author : null);
    }

    onRead(msg) {
      const c = this.conversation;
      if (!c || msg.conversation_id !== c.id) return;
      if (msg.reader === 'agent') {
        c.agent_read_seq = Math.max(c.agent_read_seq || 0, msg.seq);
        this.refreshReceipts();
      } else if (msg.reader === 'visitor') {
        // Read in another tab of ours.
        c.visitor_read_seq = Math.max(c.visitor_read_seq || 0, msg.seq);
        this.readSent = Math.max(this.readSent, msg.seq);
        this.unread = 0;
        this.refreshBadge();
      }
    }

    onConversation(msg) {
      const view = msg.conversation;
      if (!this.adoptConversation(view)) return;
      if (msg.event === 'created' && !this.loadedInitialPage) this.loadedInitialPage = true;
      if (msg.event === 'reopened') this.rated = false;
      this.refreshPanels();
    }

    onQueuePosition(msg) {
      const c = this.conversation;
      if (!c || msg.conversation_id !== c.id) return;
      c.queue_position = msg.position;
      if (c.status !== 'queued') c.status = 'queued';
      this.refreshPanels();
    }

    onHistory(msg) {
      if (!this.conversation || msg.conversation_id !== this.conversation.id) return;
      const wasOlder = this.pendingHistory === 'before';
      const keepBottom = this.log.scrollHeight - this.log.scrollTop;
      for (const m of msg.messages || []) this.onMessage(m, false);
      if (wasOlder) {
        this.hasOlder = !!msg.has_more;
        this.loadingOlder = false;
        this.older.hidden = true;
        this.log.scrollTop = this.log.scrollHeight - keepBottom; // stay where the reader was
      } else if (msg.has_more) {
        this.requestHistory({ after: this.contiguousSeq() });
        return;
      }
      this.pendingHistory = null;
      this.afterMessages(!wasOlder);
      this.countUnread();
    }

    /**
     * After a page load the history comes in as stored, not live, so count
     * what the visitor has not read yet (the server's read mark, or a newer
     * one of ours): the launcher's badge must survive going to another page.
     */
    countUnread() {
      const c = this.conversation;
      if (!c || this.canSee()) return;
      const read = Math.max(c.visitor_read_seq || 0, this.readSent);
      let unread = 0;
      for (const m of this.messages.values()) if (m.author.kind !== 'visitor' && m.seq > read) unread += 1;
      this.unread = unread;
      this.refreshBadge();
    }

    onError(msg) {
      if (msg.client_id && this.pending.has(msg.client_id)) {
        const p = this.pending.get(msg.client_id);
        const transient = ['rate_limited', 'store_unavailable', 'overloaded', 'internal'].includes(msg.code);
        if (transient) {
          setTimeout(() => this.transmit(p), 2000 + Math.random() * 2000);
        } else {
          p.state = 'failed';
          this.renderPending(p, msg.code === 'too_large' ? 'Too long — not sent' : 'Not sent');
        }
        return;
      }
      if (this.pendingHistory && msg.conversation_id) {
        this.pendingHistory = null;
        this.loadingOlder = false;
        this.older.hidden = true;
      }
      if (msg.code === 'invalid_state' && !this.rating.hidden) {
        this.rated = true; // already rated elsewhere
        this.refreshPanels();
      }
    }

    // ---- sequence bookkeeping

    lowestSeq() {
      let low = 0;
      for (const seq of this.messages.keys()) if (!low || seq < low) low = seq;
      return low;
    }

    highestSeq() {
      let high = 0;
      for (const seq of this.messages.keys()) if (seq > high) high = seq;
      return high;
    }

    /** The highest seq up to which we hold every message from our lowest one. */
    contiguousSeq() {
      let seq = this.lowestSeq();
      if (!seq) return 0;
      while (this.messages.has(seq + 1)) seq += 1;
      return seq;
    }

    resumePoint() {
      if (this.conversation) {
        const seq = this.messages.size ? this.contiguousSeq() : null;
        if (seq !== null) return { conversation_id: this.conversation.id, last_seq: seq };
      }
      const saved = store.get('resume');
      return saved && typeof saved.conversation_id === 'number' ? saved : null;
    }

    saveResume() {
      if (!this.conversation) return;
      store.set('resume', { conversation_id: this.conversation.id, last_seq: this.contiguousSeq() });
    }

    requestHistory({ before, after }) {
      if (!this.conversation) return;
      this.pendingHistory = after !== undefined ? 'after' : 'before';
      this.connection.send({
        type: 'history',
        conversation_id: this.conversation.id,
        before: before === undefined ? null : before,
        after: after === undefined ? null : after,
        limit: HISTORY_PAGE,
      });
    }

    loadOlder() {
      if (!this.hasOlder || this.loadingOlder || !this.welcomed) return;
      const low = this.lowestSeq();
      if (low <= 1) return;
      this.loadingOlder = true;
      this.older.hidden = false;
      this.requestHistory({ before: low });
    }

    // ---- messages

    addMessage(m) {
      const known = this.messages.get(m.seq);
      this.messages.set(m.seq, Object.assign({}, known, m));
      if (this.conversation && m.seq > (this.conversation.last_seq || 0)) this.conversation.last_seq = m.seq;
      const el = this.renderMessage(this.messages.get(m.seq));
      const old = this.rows.get(m.seq);
      if (old) {
        old.replaceWith(el);
      } else {
        // Insert before the first row with a higher seq (rows are few; a scan is fine).
        let after = null;
        for (const [seq, row] of this.rows) if (seq > m.seq && (!after || seq < after.seq)) after = { seq, row };
        if (after) after.row.before(el);
        else this.log.insertBefore(el, this.firstPendingRow() || null);
      }
      this.rows.set(m.seq, el);
    }

    /** Consecutive rows of one author within five minutes share one name label. */
    regroup() {
      let prev = null;
      for (const row of this.log.children) {
        if (!row.dataset.seq) continue;
        const m = this.messages.get(Number(row.dataset.seq));
        const same =
          prev && m && prev.author.kind === m.author.kind && prev.author.id === m.author.id && m.sent_at - prev.sent_at < 300000;
        row.classList.toggle('cont', !!same);
        prev = m;
      }
    }

    firstPendingRow() {
      for (const p of this.pending.values()) if (p.el.isConnected) return p.el;
      return null;
    }

    renderMessage(m) {
      const kind = m.author.kind;
      const mine = kind === 'visitor';
      const row = h('div', {
        class: 'msg ' + kind + (mine ? ' mine' : ''),
        'data-seq': String(m.seq),
        'data-author': kind,
      });
      if (kind === 'agent' || kind === 'bot') {
        row.append(
          h(
            'div',
            { class: 'who' },
            h('span', null, m.author.name || (kind === 'bot' ? 'Assistant' : 'Agent')),
            h('span', { class: 'tag ' + kind }, kind === 'bot' ? 'Bot' : 'Agent'),
          ),
        );
      }
      const bubble = h('div', { class: 'bubble', dir: 'auto' }); // right-to-left text reads right to left
      renderText(bubble, String(m.text));
      row.append(bubble);
      if (kind !== 'system') {
        const meta = h('div', { class: 'meta' }, clock(m.sent_at || Date.now()));
        if (mine) meta.append(h('span', { class: 'receipt' }, ' · ' + this.receiptFor(m.seq)));
        row.append(meta);
      }
      return row;
    }

    receiptFor(seq) {
      const c = this.conversation;
      return c && (c.agent_read_seq || 0) >= seq ? 'Read' : 'Sent';
    }

    refreshReceipts() {
      for (const [seq, row] of this.rows) {
        const receipt = row.querySelector('.receipt');
        if (receipt) receipt.textContent = ' · ' + this.receiptFor(seq);
      }
    }

    afterMessages(scroll) {
      this.empty.hidden = this.messages.size > 0 || this.pending.size > 0;
      this.regroup();
      this.saveResume();
      if (scroll !== false) this.scrollToEnd();
      this.markRead();
      this.refreshPanels();
    }

    scrollToEnd() {
      this.log.scrollTop = this.log.scrollHeight;
    }

    canSee() {
      return this.isOpen && document.visibilityState === 'visible';
    }

    /** Tell the server we read everything shown, once the panel is actually visible. */
    markRead() {
      if (!this.canSee()) return;
      this.unread = 0;
      this.refreshBadge();
      const c = this.conversation;
      const seq = this.highestSeq();
      if (!c || !this.welcomed || seq <= this.readSent) return;
      if (this.connection.send({ type: 'read', conversation_id: c.id, seq })) this.readSent = seq;
    }

    refreshBadge() {
      this.badge.hidden = this.unread === 0;
      this.badge.textContent = this.unread > 9 ? '9+' : String(this.unread);
      this.launcher.setAttribute('aria-label', this.isOpen ? 'Close chat' : this.unread ? `Open chat, ${this.unread} unread` : 'Open chat');
    }

    // ---- sending

    submitComposer() {
      const text = this.input.value.trim();
      if (!text) return;
      if ([...text].length > MAX_TEXT_CHARS) {
        this.flash(`Messages can be at most ${MAX_TEXT_CHARS} characters.`);
        return;
      }
      this.input.value = '';
      this.autosize();
      this.stopTyping();
      this.sendText(text);
    }

    sendText(text) {
      const c = this.conversation;
      const frame = {
        type: 'send',
        client_id: newClientId(),
        conversation_id: c ? c.id : null,
        text,
      };
      const p = { frame, state: 'sending', sentAt: Date.now(), el: null };
      this.pending.set(frame.client_id, p);
      p.el = h('div', { class: 'msg visitor mine pending', 'data-client-id': frame.client_id });
      this.renderPending(p);
      this.log.append(p.el);
      this.empty.hidden = true;
      this.scrollToEnd();
      if (this.welcomed) this.transmit(p);
      else if (!this.terminal) this.connection.retryNow();
    }

    transmit(p) {
      if (!this.pending.has(p.frame.client_id)) return;
      p.state = 'sending';
      this.renderPending(p);
      if (this.welcomed) this.connection.send(p.frame);
    }

    renderPending(p, failure) {
      const bubble = h('div', { class: 'bubble', dir: 'auto' }); // right-to-left text reads right to left
      renderText(bubble, p.frame.text);
      const meta = h('div', { class: 'meta' });
      if (p.state === 'failed') {
        meta.append(
          (failure || 'Not sent') + ' · ',
          h(
            'button',
            { class: 'retry', type: 'button', onclick: () => this.transmit(p) },
            'Retry',
          ),
        );
      } else {
        meta.append(this.welcomed ? 'Sending…' : 'Waiting for connection…');
      }
      p.el.className = 'msg visitor mine ' + (p.state === 'failed' ? 'failed' : 'pending');
      p.el.replaceChildren(bubble, meta);
    }

    autosize() {
      this.input.style.height = 'auto';
      this.input.style.height = Math.min(120, this.input.scrollHeight + 2) + 'px';
    }

    noteTyping() {
      const c = this.conversation;
      if (!c || !this.welcomed || c.status === 'closed') return;
      const now = Date.now();
      if (now - this.typingSentAt > TYPING_THROTTLE_MS) {
        this.typingSentAt = now;
        this.connection.send({ type: 'typing', conversation_id: c.id, typing: true });
      }
      clearTimeout(this.typingIdleTimer);
      this.typingIdleTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
    }

    stopTyping() {
      clearTimeout(this.typingIdleTimer);
      if (!this.typingSentAt) return;
      this.typingSentAt = 0;
      const c = this.conversation;
      if (c) this.connection.send({ type: 'typing', conversation_id: c.id, typing: false });
    }

    setTyping(author) {
      clearTimeout(this.typingShownTimer);
      if (!author) {
        this.typing.hidden = true;
        return;
      }
      this.typingText.textContent = `${author.name || (author.kind === 'bot' ? 'Assistant' : 'Agent')} is typing…`;
      this.typing.hidden = false;
      this.typingShownTimer = setTimeout(() => this.setTyping(null), TYPING_SHOWN_MS);
    }

    requestPerson() {
      const c = this.conversation;
      if (c && !this.connection.send({ type: 'handoff', conversation_id: c.id })) this.offlineNotice('ask for a person');
    }

    endConversation() {
      const c = this.conversation;
      if (c && c.status !== 'closed' && !this.connection.send({ type: 'close', conversation_id: c.id })) this.offlineNotice('end the chat');
    }

    /** A button did nothing because the connection is down: say so instead of staying silent. */
    offlineNotice(what) {
      this.flash(`You are offline: ${what} again once the chat is back.`);
    }

    pickScore(n) {
      this.score = n;
      this.stars.forEach((s, i) => {
        s.setAttribute('aria-checked', String(i + 1 === n));
        s.setAttribute('tabindex', i + 1 === n ? '0' : '-1');
        s.classList.toggle('lit', i < n);
      });
      this.rateButton.disabled = false;
    }

    submitRating() {
      const c = this.conversation;
      if (!c || !this.score) return;
      const comment = this.comment.value.trim();
      this.ratingToSend = {
        type: 'rate',
        conversation_id: c.id,
        score: this.score,
        comment: comment ? [...comment].slice(0, MAX_COMMENT_CHARS).join('') : null,
      };
      this.flushRating(); // offline: it waits for the next welcome, like a message
      const hadFocus = this.ratingBody.contains(this.panel.getRootNode().activeElement);
      this.rated = true;
      this.refreshPanels();
      if (hadFocus) this.input.focus(); // the form is gone: keep a keyboard user inside the panel
    }

    flushRating() {
      if (this.ratingToSend && this.welcomed && this.connection.send(this.ratingToSend)) this.ratingToSend = null;
    }

    submitPrechat(skip) {
      store.set('prechat', true);
      if (!skip) {
        const name = this.prechatName.value.trim();
        const email = this.prechatEmail.value.trim();
        if (name || email) this.identify({ name, email });
      }
      this.refreshPanels();
      this.input.focus();
    }

    // ---- status panels

    refreshPanels() {
      const c = this.conversation;
      const status = c ? c.status : null;
      // Header status line.
      let line = 'We usually reply in a few minutes';
      if (status === 'queued') line = 'Waiting for an agent…';
      else if (status === 'assigned') {
        const name = this.agentName(c.agent_id);
        line = name ? `Chatting with ${name}` : 'An agent is with you';
      }
      else if (status === 'bot') line = 'Our assistant is answering';
      else if (status === 'closed') line = 'Conversation ended';
      this.statusLine.textContent = line;
      const endHadFocus = this.panel.getRootNode().activeElement === this.endButton;
      this.endButton.hidden = !c || status === 'closed';

      // Queue position.
      const queued = status === 'queued';
      this.queueNote.hidden = !queued;
      if (queued) {
        const pos = c.queue_position;
        this.queueNote.replaceChildren(
          pos
            ? h('span', null, 'You are ', h('strong', null, `#${pos}`), ' in the queue. An agent will be with you soon.')
            : 'All our agents are busy. You are in the queue.',
        );
        this.queueNote.setAttribute('data-position', pos ? String(pos) : '');
      }

      this.handoff.hidden = status !== 'bot' || this.messages.size === 0;

      // Rating after close.
      const closed = status === 'closed';
      const ratingWasHidden = this.rating.hidden;
      this.rating.hidden = !closed;
      if (ratingWasHidden && closed) requestAnimationFrame(() => this.scrollToEnd());
      this.ratingBody.hidden = this.rated;
      this.ratingThanks.hidden = !this.rated;

      // Pre-chat form before the first message.
      const ask = config.prechat && !store.get('prechat') && !c && this.pending.size === 0;
      this.prechat.hidden = !ask;
      this.composer.hidden = ask;
      this.input.placeholder = closed ? 'Write to start again…' : 'Write a message…';
      // "End chat" just vanished under a keyboard user's focus: carry it on to the rating.
      if (endHadFocus && this.endButton.hidden) {
        (closed && !this.rated ? this.stars.find((s) => s.tabIndex === 0) : this.input).focus();
      }
    }

    /** The name the assigned agent signed their newest message with (after a transfer, not the previous agent's). */
    agentName(agentId) {
      let newest = null;
      for (const m of this.messages.values()) {
        if (m.author.kind === 'agent' && m.author.id === agentId && (!newest || m.seq > newest.seq)) newest = m;
      }
      return newest ? newest.author.name : null;
    }

    refreshBanner() {
      if (this.terminal) {
        this.banner.textContent = 'Chat is unavailable right now. Please try again later.';
        this.banner.className = 'banner error';
        this.banner.hidden = false;
      } else if (this.everConnected && !this.welcomed) {
        this.banner.textContent = 'You are offline. Reconnecting…';
        this.banner.className = 'banner';
        this.banner.hidden = false;
      } else {
        this.banner.hidden = true;
      }
      this.sendButton.disabled = this.terminal;
      for (const p of this.pending.values()) if (p.state !== 'failed') this.renderPending(p);
    }

    flash(text) {
      this.banner.textContent = text;
      this.banner.className = 'banner';
      this.banner.hidden = false;
      setTimeout(() => this.refreshBanner(), 4000);
    }
  }

  // ---------------------------------------------------------------- host API

  const widget = new Widget();
  const api = Object.freeze({
    version: '1',
    identify: (profile) => widget.identify(profile),
    reset: () => widget.reset(),
    open: () => widget.open(),
    close: () => widget.close(),
    on: (event, fn) => widget.on(event, fn),
    off: (event, fn) => widget.listeners[event] && widget.listeners[event].delete(fn),
  });

  // Calls made before the script loaded: `window.Switchboard = {q: [['identify', {...}], ...]}`.
  const early = window.Switchboard && Array.isArray(window.Switchboard.q) ? window.Switchboard.q : [];
  window.Switchboard = api;
  for (const [method, ...args] of early) {
    if (typeof api[method] === 'function') api[method](...args);
  }
  window.dispatchEvent(new CustomEvent('switchboard:ready'));
})();
