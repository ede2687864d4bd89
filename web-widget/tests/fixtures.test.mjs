// The golden fixtures of protocol/fixtures, played to the widget and the console
// by a scripted WebSocket peer (Playwright's routeWebSocket) on pages served
// straight from src/. No server binary: this pins the browser code to the
// contract, including what the live server cannot produce yet (NLP analysis,
// bot messages, transfers to another agent).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { launchBrowser, watch, fixture, webRoot, W, shot } from './server.mjs';

const ORIGIN = 'http://switchboard.test';
const FILES = {
  '/': ['demo.html', 'text/html'],
  '/widget.js': ['widget.js', 'text/javascript'],
  '/console': ['console/index.html', 'text/html'],
  '/console/console.js': ['console/console.js', 'text/javascript'],
  '/console/console.css': ['console/console.css', 'text/css'],
};

// The customer of the fixtures, as docs/api.md shows it.
const CUSTOMER = {
  id: 7, name: 'Ada Lovelace', email: 'ada@example.com', phone: '+44 20 7946 0958',
  company: 'Analytical Engines Ltd', country: 'GB', attributes: { plan: 'pro' }, tags: ['vip'],
  external_id: null, first_seen: 1763790000000, last_seen: 1763790004000,
  last_page_url: 'https://shop.example.com/orders', user_agent: 'Mozilla/5.0',
};

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Serves src/ at ORIGIN and answers the REST calls the console makes from fixtures. */
async function serve(page) {
  await page.route(`${ORIGIN}/**`, async (route) => {
    const url = new URL(route.request().url());
    const file = FILES[url.pathname];
    if (file) {
      return route.fulfill({ contentType: file[1] + '; charset=utf-8', body: readFileSync(path.join(webRoot, 'src', file[0])) });
    }
    const json = (body, status = 200) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
    if (url.pathname === '/api/login') {
      return json({ token: 'fixture-token', expires_at: 1764394800000, agent: fixture('server', 'agent_welcome').agent });
    }
    if (url.pathname === '/api/conversations/42') {
      const m = fixture('server', 'message');
      delete m.type;
      return json({ conversation: fixture('server', 'conversation').conversation, messages: [m], has_more: false });
    }
    if (url.pathname === '/api/conversations') return json({ conversations: [], next_cursor: null });
    if (url.pathname === '/api/customers/7') return json(CUSTOMER);
    return json({ error: { code: 'not_found', message: 'not in this test' } }, 404);
  });
}

/** A scripted peer: records what the page sends, answers via `reply(frame, ws)`. */
async function peer(page, reply) {
  const peerState = { sent: [], ws: null };
  await page.routeWebSocket(`ws://switchboard.test/ws`, (ws) => {
    peerState.ws = ws;
    ws.onMessage((data) => {
      const frame = JSON.parse(String(data));
      peerState.sent.push(frame);
      for (const out of reply(frame) || []) ws.send(JSON.stringify(out));
    });
  });
  peerState.push = (frame) => peerState.ws.send(JSON.stringify(frame));
  peerState.waitFor = async (type) => {
    for (let i = 0; i < 100; i++) {
      const f = peerState.sent.find((x) => x.type === type);
      if (f) return f;
      await page.waitForTimeout(50);
    }
    throw new Error(`the page never sent ${type}`);
  };
  return peerState;
}

test('widget: golden server frames render as the contract says', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const seen = watch(page);
  await serve(page);
  const ws = await peer(page, (f) => {
    if (f.type === 'visitor_hello') return [fixture('server', 'visitor_welcome')];
    if (f.type === 'history') return [fixture('server', 'history')];
    if (f.type === 'send') return [{ ...fixture('server', 'ack'), client_id: f.client_id, seq: 4, message_id: 1003 }];
    return [];
  });
  await page.goto(ORIGIN + '/');
  await page.locator(W.launcher).click();

  const hello = await ws.waitFor('visitor_hello');
  assert.deepEqual(Object.keys(hello).sort(), Object.keys(fixture('client', 'visitor_hello')).sort());
  const history = await ws.waitFor('history');
  assert.deepEqual(Object.keys(history).sort(), Object.keys(fixture('client', 'history')).sort());
  assert.equal(history.conversation_id, 42);

  // history.json: the visitor's own message (seq 2), shown as ours, read by the agent (agent_read_seq 1 < 2: not yet).
  const own = page.locator(`${W.rows}[data-seq="2"]`);
  await own.waitFor();
  assert.equal(await own.locator('.bubble').textContent(), 'Where is order SB-10442?');
  assert.match(await own.getAttribute('class'), /mine/);
  assert.match(await own.locator('.meta').textContent(), /Sent/);
  assert.match(await page.locator('#switchboard-widget .status').textContent(), /agent|Chatting/);

  // message_from_bot.json: marked as the bot.
  ws.push(fixture('server', 'message_from_bot'));
  const bot = page.locator(`${W.rows}[data-seq="3"]`);
  await bot.waitFor();
  assert.equal(await bot.getAttribute('data-author'), 'bot');
  assert.equal(await bot.locator('.tag').textContent(), 'Bot');
  assert.match(await bot.locator('.who').textContent(), /Switchboard bot/);

  // typing.json: Grace is typing; read.json: the agent read up to seq 2.
  ws.push(fixture('server', 'typing'));
  await page.locator('#switchboard-widget .typing', { hasText: 'Grace is typing' }).waitFor();
  ws.push({ ...fixture('server', 'typing'), typing: false });
  await page.locator('#switchboard-widget .typing').waitFor({ state: 'hidden' });
  ws.push(fixture('server', 'read'));
  await own.locator('.meta', { hasText: 'Read' }).waitFor();

  // The panel is open, so the visitor reads what it shows (up to seq 3).
  await page.waitForFunction(() => true);
  for (let i = 0; i < 40 && !ws.sent.some((f) => f.type === 'read' && f.seq === 3); i++) await page.waitForTimeout(50);
  const read = ws.sent.find((f) => f.type === 'read' && f.seq === 3);
  assert.ok(read, 'the widget sent read up to seq 3');
  assert.deepEqual(Object.keys(read).sort(), Object.keys(fixture('client', 'read')).sort());

  // A send is acknowledged by client_id and keeps its place after seq 3.
  await page.locator(W.input).fill('Thanks!');
  await page.locator(W.input).press('Enter');
  await page.locator(`${W.rows}[data-seq="4"] .bubble`, { hasText: 'Thanks!' }).waitFor();
  const send = await ws.waitFor('send');
  assert.deepEqual(Object.keys(send).sort(), Object.keys(fixture('client', 'send')).sort());
  assert.equal(send.conversation_id, 42);

  // queue_position.json is for conversation 43, not ours: ignored.
  ws.push(fixture('server', 'queue_position'));
  // conversation_rated.json: closed and already rated → thanks, no form.
  ws.push(fixture('server', 'conversation_rated'));
  await page.locator('#switchboard-widget .rating', { hasText: 'Thank you' }).waitFor();
  assert.equal(await page.locator('#switchboard-widget .queue').isVisible(), false);
  // error.json answers a send we never made: nothing breaks.
  ws.push(fixture('server', 'error'));

  const seqs = await page.locator(W.rows).evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
  assert.deepEqual(seqs, [2, 3, 4]);
  assert.deepEqual(seen.errors, []);
  await ctx.close();
});

test('console: golden frames, NLP analysis beside visitor messages, bot marked, transfer away', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  const seen = watch(page);
  await serve(page);
  const ws = await peer(page, (f) => (f.type === 'agent_hello' ? [fixture('server', 'agent_welcome')] : []));
  await page.goto(ORIGIN + '/console');
  await page.locator('#login-email').fill('grace@example.com');
  await page.locator('#login-password').fill('whatever-password');
  await page.locator('#login-submit').click();

  const hello = await ws.waitFor('agent_hello');
  assert.equal(hello.token, 'fixture-token');
  assert.deepEqual(Object.keys(hello).sort(), Object.keys(fixture('client', 'agent_hello')).sort());

  // agent_welcome.json: conversation 42 is Grace's (team orders), 43 waits in the queue.
  await page.locator('#mine-list [data-conversation="42"]', { hasText: 'Ada Lovelace' }).waitFor();
  assert.equal(await page.locator('#mine-list [data-conversation="42"] .team-chip').textContent(), 'orders');
  await page.locator('#queue-list [data-conversation="43"]', { hasText: '#1 in queue' }).waitFor();
  await page.locator('#me-name', { hasText: 'Grace' }).waitFor();
  await page.locator('#mine-list [data-conversation="42"]').click();

  // message.json (through REST): the analysis shows beside the visitor's message.
  const visitorMsg = page.locator('#thread-log [data-seq="2"]');
  await visitorMsg.waitFor();
  const chips = await visitorMsg.locator('.nlp .chip').allTextContents();
  assert.ok(chips.includes('order status · 91%'), chips.join(' | '));
  assert.ok(chips.includes('negative -0.25'), chips.join(' | '));
  assert.ok(chips.includes('order number: SB-10442'), chips.join(' | '));
  assert.ok(chips.includes('en'));

  // message_from_bot.json: marked as the bot, no analysis.
  ws.push(fixture('server', 'message_from_bot'));
  const bot = page.locator('#thread-log [data-seq="3"]');
  await bot.waitFor();
  assert.equal(await bot.locator('.tag').textContent(), 'Bot');
  assert.equal(await bot.locator('.nlp').count(), 0);

  // The agent reads what is shown.
  for (let i = 0; i < 40 && !ws.sent.some((f) => f.type === 'read' && f.seq === 3); i++) await page.waitForTimeout(50);
  assert.ok(ws.sent.some((f) => f.type === 'read' && f.conversation_id === 42 && f.seq === 3), 'read up to seq 3');

  // The customer panel (GET /api/customers/7).
  await page.locator('#customer-panel input[name="company"]').waitFor();
  assert.equal(await page.locator('#customer-panel input[name="company"]').inputValue(), 'Analytical Engines Ltd');
  await shot(page, 'console-fixtures-nlp');

  // A visitor typing.
  ws.push({ type: 'typing', conversation_id: 42, author: { kind: 'visitor', id: 7, name: 'Ada Lovelace' }, typing: true });
  await page.locator('#thread-typing', { hasText: 'Ada Lovelace is typing' }).waitFor();

  // Typing and send from the agent have the fixtures' shape.
  await page.locator('#composer-input').pressSequentially('On its way', { delay: 10 });
  await page.locator('#composer-input').press('Enter');
  const typing = await ws.waitFor('typing');
  assert.deepEqual(Object.keys(typing).sort(), Object.keys(fixture('client', 'typing')).sort());
  const send = await ws.waitFor('send');
  assert.deepEqual(Object.keys(send).sort(), Object.keys(fixture('client', 'send_to_conversation')).sort());
  ws.push({ ...fixture('server', 'ack'), client_id: send.client_id, seq: 4, message_id: 1004 });
  await page.locator('#thread-log [data-seq="4"] .bubble', { hasText: 'On its way' }).waitFor();

  // A transfer to a team has the fixture's shape (presence.json: Grace is in orders).
  await page.locator('#transfer-to').selectOption('team:orders');
  await page.locator('#transfer').click();
  const toTeam = await ws.waitFor('transfer_to_team');
  assert.deepEqual(Object.keys(toTeam).sort(), Object.keys(fixture('client', 'transfer_to_team')).sort());
  assert.deepEqual(toTeam, { ...fixture('client', 'transfer_to_team'), team: 'orders' });

  // Claim from the queue has the fixture's shape.
  await page.locator('#queue-list [data-conversation="43"]').click();
  await page.locator('#claim').click();
  const claim = await ws.waitFor('claim');
  assert.deepEqual(claim, fixture('client', 'claim'));

  // conversation_transferred.json: 42 goes to agent 4 and leaves Grace's list.
  ws.push(fixture('server', 'conversation_transferred'));
  await page.locator('#mine-list [data-conversation="42"]').waitFor({ state: 'detached' });
  // presence.json updates the team.
  ws.push({ ...fixture('server', 'presence'), status: 'away' });
  await page.locator('#me-dot.away').waitFor();
  // conversation_transferred_to_team.json: 42 waits for the billing team, shown on it.
  ws.push(fixture('server', 'conversation_transferred_to_team'));
  await page.locator('#queue-list [data-conversation="42"] .team-chip', { hasText: 'billing' }).waitFor();

  assert.deepEqual(seen.errors, []);
  await ctx.close();
});
