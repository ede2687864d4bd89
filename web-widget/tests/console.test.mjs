// The console beyond the basic chat: history paged on scroll (console and
// widget), an admin setting an agent's teams, transfer between two agents and
// to a team (the team shown on the conversation), status and capacity, the
// customers page (search, edit, delete), and the title badge while the tab is hidden.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, watch, shot, W, recordFrames,
  openWidget, visitorSends, widgetTranscript, consoleLogin, consoleTranscript, agentTakes, assertSeqsComplete,
} from './server.mjs';

let server;
let browser;
let grace;
let linus;

before(async () => {
  // burst() below writes 75 messages at once to build a long history: more than
  // the default per-connection burst (60), so this server allows bigger bursts.
  server = await startServer({ env: { SWITCHBOARD_MESSAGES_BURST: '200', SWITCHBOARD_IP_MESSAGES_BURST: '400' } });
  browser = await launchBrowser();
  grace = await server.createAgent({ email: 'grace@example.com', name: 'Grace', capacity: 5 });
  linus = await server.createAgent({ email: 'linus@example.com', name: 'Linus', capacity: 5 });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/**
 * An agent signed in to the console and a visitor on the demo page who has
 * written `first`, each in a browser context of their own; `seen` watches both
 * pages for errors, `visitorFrames` records what the visitor receives.
 */
async function agentAndVisitor(account, first) {
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitorCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const agent = await agentCtx.newPage();
  const visitor = await visitorCtx.newPage();
  const seen = [watch(agent), watch(visitor)];
  const visitorFrames = recordFrames(visitor);
  await consoleLogin(agent, server, account.email, account.password);
  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, first);
  const close = async () => {
    await agentCtx.close();
    await visitorCtx.close();
  };
  return { agent, visitor, seen, visitorFrames, close };
}

/** Sends `n` messages as the same visitor from a second "tab": a plain WebSocket with the widget's token. */
async function burst(page, n) {
  return page.evaluate(async (count) => {
    const token = JSON.parse(localStorage.getItem('switchboard.demo.token'));
    const ws = new WebSocket(`ws://${location.host}/ws`, 'switchboard.v1.json');
    const acks = new Set();
    await new Promise((resolve, reject) => {
      ws.onerror = reject;
      ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        if (msg.type === 'visitor_welcome') {
          for (let i = 1; i <= count; i++) {
            ws.send(JSON.stringify({ type: 'send', client_id: `burst-${i}`, conversation_id: null, text: `Burst message ${i}` }));
          }
        }
        if (msg.type === 'ack') acks.add(msg.client_id);
        if (acks.size === count) resolve();
      };
      ws.onopen = () => ws.send(JSON.stringify({ type: 'visitor_hello', token, resume: [], page_url: null }));
    });
    ws.close(1000);
    return acks.size;
  }, n);
}

test('history pages on scroll, teams, transfer, status, customers, title badge', async () => {
  const vCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const gCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const lCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const aCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await vCtx.newPage();
  const g = await gCtx.newPage();
  const l = await lCtx.newPage();
  const boss = await aCtx.newPage();
  const seen = [watch(visitor), watch(g), watch(l), watch(boss)];

  // An admin puts Grace in the orders team from the dashboard, then signs out.
  await consoleLogin(boss, server, server.adminEmail, server.adminPassword);
  await boss.locator('.nav-item[data-view="dashboard"]').click();
  const graceRow = boss.locator(`#team-list li[data-agent="${grace.id}"]`);
  await graceRow.locator('input[name="teams"]').fill('two words');
  await graceRow.locator('button[type="submit"]').click();
  await boss.locator('#toast', { hasText: 'not a team name' }).waitFor();
  await graceRow.locator('input[name="teams"]').fill('Orders');
  await graceRow.locator('button[type="submit"]').click();
  await graceRow.locator('.team-chip', { hasText: 'orders' }).waitFor();
  const adminToken = await server.login(server.adminEmail, server.adminPassword);
  const listed = await server.api('GET', '/api/agents', undefined, adminToken);
  assert.deepEqual(listed.agents.find((a) => a.id === grace.id).teams, ['orders']);
  await shot(boss, 'console-admin-teams');
  await boss.locator('#logout').click();
  await boss.locator('#login').waitFor({ state: 'visible' });

  await consoleLogin(g, server, grace.email, grace.password);
  // Linus is away: new conversations go to Grace.
  await consoleLogin(l, server, linus.email, linus.password);
  await l.locator('#me-status').selectOption('away');
  await l.locator('#me-dot.away').waitFor();
  await g.locator('#transfer-to option', { hasText: 'Linus (away' }).waitFor({ state: 'attached' });

  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'First message, before the burst');
  await agentTakes(visitor, g);
  assert.equal(await burst(visitor, 75), 75);
  await g.locator('#thread-log .bubble', { hasText: 'Burst message 75' }).waitFor({ timeout: 15000 });
  await visitor.locator('#switchboard-widget .bubble', { hasText: 'Burst message 75' }).waitFor({ timeout: 15000 });

  // A fresh page shows the newest page, then older ones as the log is scrolled up.
  // (The bot may have answered too: the server's last_seq says how many there are.)
  const convId = Number(await g.locator('#mine-list [data-conversation]').first().getAttribute('data-conversation'));
  const graceToken = await server.login(grace.email, grace.password);
  const total = (await server.api('GET', `/api/conversations/${convId}?limit=1`, undefined, graceToken)).conversation.last_seq;
  assert.ok(total >= 76, `last_seq ${total}`);
  await visitor.reload();
  await openWidget(visitor);
  await visitor.locator('#switchboard-widget .bubble', { hasText: 'Burst message 75' }).waitFor();
  for (let i = 0; i < 10 && (await visitor.locator(W.rows).count()) < total; i++) {
    await visitor.locator('#switchboard-widget .log').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    await visitor.waitForTimeout(400);
  }
  const vt = await widgetTranscript(visitor);
  assert.equal(vt.length, total, 'the widget paged back to the first message');
  assertSeqsComplete(assert, vt, 'widget after paging');
  assert.equal(vt[0].text, 'First message, before the burst');

  await g.reload();
  await g.locator('#mine-list [data-conversation]').first().click();
  await g.locator('#thread-log .bubble', { hasText: 'Burst message 75' }).waitFor();
  assert.ok((await g.locator('#thread-log [data-seq]').count()) < total, 'the console starts with one page');
  for (let i = 0; i < 10 && (await g.locator('#thread-log [data-seq]').count()) < total; i++) {
    await g.locator('#thread-log').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
    await g.waitForTimeout(400);
  }
  const ct = await consoleTranscript(g);
  assert.equal(ct.length, total, 'the console paged back to the first message');
  assertSeqsComplete(assert, ct, 'console after paging');

  // The title badge counts news while the console tab is hidden.
  await g.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await visitorSends(visitor, 'Are you still there?');
  await g.waitForFunction(() => document.title.startsWith('(1)'), null, { timeout: 10000 });
  await g.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await g.waitForFunction(() => document.title === 'Switchboard');

  // Transfer to Linus (back online): it leaves Grace's list and arrives in his.
  await l.locator('#me-status').selectOption('online');
  await g.locator('#transfer-to option', { hasText: 'Linus (online' }).waitFor({ state: 'attached' });
  await g.locator('#transfer-to').selectOption({ label: await g.locator('#transfer-to option', { hasText: 'Linus' }).textContent() });
  await g.locator('#transfer').click();
  await l.locator('#mine-list [data-conversation]').first().waitFor({ timeout: 10000 });
  await g.locator('#mine-list [data-conversation]').waitFor({ state: 'detached', timeout: 10000 });
  await l.locator('#mine-list [data-conversation]').first().click();
  await l.locator('#thread-log .bubble', { hasText: 'Are you still there?' }).waitFor();
  await l.locator('#composer-input').fill('Linus here, I took over from Grace.');
  await l.locator('#composer-input').press('Enter');
  await visitor.locator('#switchboard-widget .msg.agent', { hasText: 'Linus here' }).waitFor({ timeout: 10000 });
  assert.match(await visitor.locator('#switchboard-widget .msg.agent', { hasText: 'Linus here' }).locator('.who').textContent(), /Linus/);

  // Linus moves it to the orders team: Grace, its member, gets it, and the team shows.
  await l.locator('#transfer-to option[value="team:orders"]', { hasText: 'Team orders (1 online)' }).waitFor({ state: 'attached' });
  await l.locator('#transfer-to').selectOption('team:orders');
  await l.locator('#transfer').click();
  await g.locator('#mine-list [data-conversation] .team-chip', { hasText: 'orders' }).waitFor({ timeout: 10000 });
  await l.locator('#mine-list [data-conversation]').waitFor({ state: 'detached', timeout: 10000 });
  await g.locator('#mine-list [data-conversation]').first().click();
  await g.locator('#thread-team', { hasText: 'Team orders' }).waitFor();
  await g.locator('#customer-panel dd', { hasText: 'orders' }).waitFor();
  await shot(g, 'console-team');
  // And back to Linus by name, for what follows.
  await g.locator('#transfer-to').selectOption({ label: await g.locator('#transfer-to option', { hasText: 'Linus' }).textContent() });
  await g.locator('#transfer').click();
  await l.locator('#mine-list [data-conversation] .team-chip', { hasText: 'orders' }).waitFor({ timeout: 10000 });

  // Capacity is saved through the server and comes back in presence.
  await l.locator('#me-capacity').fill('3');
  await l.locator('#me-capacity').press('Tab');
  await g.locator('#transfer-to option', { hasText: '/3)' }).waitFor({ state: 'attached', timeout: 10000 }).catch(() => {});
  await l.reload();
  await l.locator('#app').waitFor({ state: 'visible' });
  await l.waitForFunction(() => document.querySelector('#me-capacity').value === '3', null, { timeout: 10000 });

  // The customers page: find the visitor by email after an edit, then delete.
  await l.locator('#mine-list [data-conversation]').first().click();
  const panel = l.locator('#customer-panel');
  await panel.locator('input[name="email"]').waitFor();
  await panel.locator('input[name="name"]').fill('Burst Tester');
  await panel.locator('input[name="email"]').fill('burst@example.com');
  await panel.locator('input[name="tags"]').fill('vip, beta');
  await panel.locator('button[type="submit"]').click();
  await panel.locator('.saved', { hasText: 'Saved' }).waitFor();
  await l.locator('#thread-name', { hasText: 'Burst Tester' }).waitFor();
  await shot(l, 'console-customer-panel');

  await l.locator('.nav-item[data-view="customers"]').click();
  await l.locator('#cs-q').fill('BURST@');
  await l.locator('#customer-search button[type="submit"]').click();
  await l.locator('#customer-rows tr', { hasText: 'Burst Tester' }).waitFor();
  assert.equal(await l.locator('#customer-rows tr').count(), 1);
  await l.locator('#cs-q').fill('');
  await l.locator('#cs-tag').fill('vip');
  await l.locator('#customer-search button[type="submit"]').click();
  await l.locator('#customer-rows tr', { hasText: 'Burst Tester' }).waitFor();
  await l.locator('#customer-rows tr', { hasText: 'Burst Tester' }).click();
  const editor = l.locator('#customer-editor');
  await editor.locator('input[name="company"]').fill('Analytical Engines Ltd');
  await editor.locator('button[type="submit"]').click();
  await editor.locator('.saved', { hasText: 'Saved' }).waitFor();
  await l.locator('#customer-rows tr', { hasText: 'Burst Tester' }).waitFor();
  await shot(l, 'console-customers-edit');
  const id = Number(await l.locator('#customer-rows tr', { hasText: 'Burst Tester' }).getAttribute('data-customer'));
  const token = await server.login(linus.email, linus.password);
  assert.equal((await server.api('GET', `/api/customers/${id}`, undefined, token)).company, 'Analytical Engines Ltd');
  l.once('dialog', (d) => d.accept());
  await editor.locator('button', { hasText: 'Delete' }).click();
  await l.locator('#customer-rows tr', { hasText: 'Burst Tester' }).waitFor({ state: 'detached' });
  await assert.rejects(server.api('GET', `/api/customers/${id}`, undefined, token), /404/);

  for (const s of seen) assert.deepEqual(s.errors, []);
  await vCtx.close();
  await gCtx.close();
  await lCtx.close();
  await aCtx.close();
});

test('a disabled account is told so at sign-in, not "wrong password"', async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const seen = watch(page);
  const admin = await server.login(server.adminEmail, server.adminPassword);
  const ada = await server.createAgent({ email: 'ada@example.com', name: 'Ada' });
  await server.api('PATCH', `/api/agents/${ada.id}`, { disabled: true }, admin);
  await page.goto(server.url + '/console');
  await page.locator('#login-email').fill(ada.email);
  await page.locator('#login-password').fill(ada.password);
  await page.locator('#login-submit').click();
  await page.locator('#login-error', { hasText: 'This account has been disabled.' }).waitFor();
  await page.locator('#login-password').fill('not-her-password');
  await page.locator('#login-submit').click();
  await page.locator('#login-error', { hasText: 'Wrong email or password.' }).waitFor();
  assert.deepEqual(seen.errors, []);
  await ctx.close();
});

test('an admin deletes an agent from the dashboard after a confirm; the agent is signed out', async () => {
  const bea = await server.createAgent({ email: 'bea@example.com', name: 'Bea' });
  const aCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const bCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const boss = await aCtx.newPage();
  const b = await bCtx.newPage();
  const seen = [watch(boss), watch(b)];
  await consoleLogin(b, server, bea.email, bea.password);
  await consoleLogin(boss, server, server.adminEmail, server.adminPassword);
  await boss.locator('.nav-item[data-view="dashboard"]').click();
  const row = boss.locator(`#team-list li[data-agent="${bea.id}"]`);
  // No delete button on the admin's own row.
  const me = (await server.api('GET', '/api/me', undefined, await server.login(server.adminEmail, server.adminPassword))).id;
  await boss.locator(`#team-list li[data-agent="${me}"]`).waitFor();
  assert.equal(await boss.locator(`#team-list li[data-agent="${me}"] button`, { hasText: 'Delete' }).count(), 0);

  // Dismissing the confirm keeps her.
  boss.once('dialog', (d) => d.dismiss());
  await row.locator('button', { hasText: 'Delete' }).click();
  await boss.waitForTimeout(300);
  assert.equal(await row.count(), 1);
  const admin = await server.login(server.adminEmail, server.adminPassword);
  assert.ok((await server.api('GET', '/api/agents', undefined, admin)).agents.some((a) => a.id === bea.id));

  // Accepting deletes her: her row goes, her console signs out and says why.
  let asked = '';
  boss.once('dialog', (d) => {
    asked = d.message();
    d.accept();
  });
  await row.locator('button', { hasText: 'Delete' }).click();
  await row.waitFor({ state: 'detached' });
  assert.match(asked, /Delete Bea\?/);
  await boss.locator('#toast', { hasText: 'Bea deleted.' }).waitFor();
  await b.locator('#login-error', { hasText: 'This account has been deleted.' }).waitFor({ timeout: 10000 });
  assert.ok(!(await server.api('GET', '/api/agents', undefined, admin)).agents.some((a) => a.id === bea.id));
  for (const s of seen) assert.deepEqual(s.errors, []);
  await aCtx.close();
  await bCtx.close();
});

test("another agent's console drops a disabled or deleted account at once, and shows it again when enabled", async () => {
  const dee = await server.createAgent({ email: 'dee@example.com', name: 'Dee' });
  const cy = await server.createAgent({ email: 'cy@example.com', name: 'Cy' });
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  const seen = watch(page);
  await consoleLogin(page, server, cy.email, cy.password);
  await page.locator('.nav-item[data-view="dashboard"]').click();
  const row = page.locator(`#team-list li[data-agent="${dee.id}"]`);
  const option = page.locator(`#transfer-to option[value="agent:${dee.id}"]`);
  await row.waitFor();
  assert.equal(await option.count(), 1);
  const admin = await server.login(server.adminEmail, server.adminPassword);
  await server.api('PATCH', `/api/agents/${dee.id}`, { disabled: true }, admin);
  await row.waitFor({ state: 'detached' });
  assert.equal(await option.count(), 0);
  await server.api('PATCH', `/api/agents/${dee.id}`, { disabled: false }, admin);
  await row.waitFor();
  await page.locator(`#team-list li[data-agent="${dee.id}"] .load`, { hasText: 'offline' }).waitFor();
  await server.api('DELETE', `/api/agents/${dee.id}`, undefined, admin);
  await row.waitFor({ state: 'detached' });
  assert.equal(await option.count(), 0);
  assert.deepEqual(seen.errors, []);
  await ctx.close();
});

test('saved replies: an admin adds them on the dashboard; an agent inserts one with /shortcut; it reaches the visitor as text', async () => {
  const sam = await server.createAgent({ email: 'sam@example.com', name: 'Sam', capacity: 5 });
  const adminCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const boss = await adminCtx.newPage();
  const bossSeen = watch(boss);
  await consoleLogin(boss, server, server.adminEmail, server.adminPassword);
  await boss.locator('.nav-item[data-view="dashboard"]').click();
  const text = 'Returns are free for 30 days. <b>Keep</b> the receipt & box.';
  for (const [shortcut, body] of [['returns', text], ['hello', 'Hi! How can I help?']]) {
    await boss.locator('#reply-shortcut').fill(shortcut);
    await boss.locator('#reply-text').fill(body);
    await boss.locator('#reply-form button[type="submit"]').click();
    await boss.locator('#reply-list li', { hasText: '/' + shortcut }).waitFor();
  }
  // By shortcut; the text shown as text.
  assert.deepEqual(await boss.locator('#reply-list .shortcut').allTextContents(), ['/hello', '/returns']);
  assert.equal(await boss.locator('#reply-list li', { hasText: '/returns' }).locator('.text').textContent(), text);
  assert.equal(await boss.locator('#reply-list b').count(), 0);
  await shot(boss, 'console-saved-replies-dashboard');
  // A taken shortcut is refused and said so.
  await boss.locator('#reply-shortcut').fill('hello');
  await boss.locator('#reply-text').fill('again');
  await boss.locator('#reply-form button[type="submit"]').click();
  await boss.locator('#toast', { hasText: 'Could not add /hello' }).waitFor();
  boss.once('dialog', (d) => d.accept());
  await boss.locator('#reply-list li', { hasText: '/hello' }).locator('button', { hasText: 'Delete' }).click();
  await boss.locator('#reply-list li', { hasText: '/hello' }).waitFor({ state: 'detached' });
  assert.deepEqual(bossSeen.errors, []);
  await adminCtx.close();

  // An agent (no add form for her) answers a visitor with it.
  const { agent, visitor, seen, close } = await agentAndVisitor(sam, 'Can I send these shoes back?');
  await agentTakes(visitor, agent);
  const input = agent.locator('#composer-input');
  const picker = agent.locator('#reply-picker');
  await input.pressSequentially('/zz');
  await picker.locator('li', { hasText: 'No saved reply starts with “zz”' }).waitFor();
  await input.press('Escape');
  await picker.waitFor({ state: 'hidden' });
  await input.fill('');
  await input.pressSequentially('/ret');
  await picker.locator('li[role="option"][aria-selected="true"]', { hasText: '/returns' }).waitFor();
  assert.equal(await picker.locator('li[role="option"]').count(), 1);
  await shot(agent, 'console-saved-reply-picker');
  await input.press('Enter');
  await picker.waitFor({ state: 'hidden' });
  assert.equal(await input.inputValue(), text);
  await input.press('Enter');
  const bubble = visitor.locator(`${W.rows} .bubble`, { hasText: 'Returns are free for 30 days.' });
  await bubble.waitFor({ timeout: 15000 });
  assert.equal(await bubble.textContent(), text);
  assert.equal(await bubble.locator('b').count(), 0);
  await agent.locator('.nav-item[data-view="dashboard"]').click();
  await agent.locator('#reply-list li', { hasText: '/returns' }).waitFor();
  assert.equal(await agent.locator('#reply-form').isVisible(), false);
  assert.equal(await agent.locator('#reply-list button').count(), 0);
  for (const s of seen) assert.deepEqual(s.errors, []);
  await close();
});

test('private notes: an agent adds one between the messages; the visitor never receives it; it is there after a reload', async () => {
  const nia = await server.createAgent({ email: 'nia@example.com', name: 'Nia', capacity: 5 });
  const { agent, visitor, seen, visitorFrames, close } = await agentAndVisitor(nia, 'I need an invoice with our company name on it');
  await agentTakes(visitor, agent);

  const input = agent.locator('#composer-input');
  await agent.locator('#mode-note').click();
  assert.equal(await agent.locator('#composer.note-mode').count(), 1);
  assert.equal(await input.getAttribute('aria-label'), 'Private note');
  const note = 'Company account: invoices go to accounts@acme.test <i>asap</i>';
  await input.fill(note);
  await input.press('Enter');
  const row = agent.locator('#thread-log .msg.note', { hasText: 'Company account' });
  await row.waitFor();
  assert.equal(await row.locator('.bubble').textContent(), note);
  assert.equal(await row.locator('.bubble i').count(), 0);
  await shot(agent, 'console-private-note');

  // Back to replies: this one the visitor gets.
  await agent.locator('#mode-reply').click();
  await input.fill('Sure, I will send it today.');
  await input.press('Enter');
  await visitor.locator(`${W.rows} .bubble`, { hasText: 'I will send it today' }).waitFor({ timeout: 15000 });
  assert.ok(!(await visitor.locator('#switchboard-widget').innerText()).includes('Company account'));
  assert.deepEqual(visitorFrames.received.filter((f) => f.type === 'note'), []);

  // After a reload the note is in its place: after the visitor's message, before the reply.
  await agent.reload();
  await agent.locator('#mine-list [data-conversation]').first().click();
  await row.waitFor();
  const order = await agent.locator('#thread-log .msg').evaluateAll((rows) =>
    rows.map((r) => (r.dataset.note ? 'note' : r.dataset.author)).filter((k) => k === 'note' || k === 'visitor' || k === 'agent'),
  );
  assert.deepEqual(order.slice(-3), ['visitor', 'note', 'agent']);
  for (const s of seen) assert.deepEqual(s.errors, []);
  await close();
});

test('where an agent cannot reply, the composer writes private notes; after a claim it replies again', async () => {
  const wes = await server.createAgent({ email: 'wes@example.com', name: 'Wes', capacity: 5 });
  const { agent, visitor, seen, visitorFrames, close } = await agentAndVisitor(wes, 'Where is my order?');
  // The bot has it: Wes may not reply, but may leave a note.
  await agent.locator('#bot-list [data-conversation]').first().click();
  await agent.locator('#claim').waitFor({ state: 'visible' });
  await agent.locator('#composer.note-mode').waitFor();
  assert.equal(await agent.locator('#mode-reply').isDisabled(), true);
  await agent.locator('#composer-input').fill('Order is stuck at the depot, check before answering');
  await agent.locator('#composer-input').press('Enter');
  await agent.locator('#thread-log .msg.note', { hasText: 'stuck at the depot' }).waitFor();
  // Claimed, the (empty) composer replies again.
  await agent.locator('#claim').click();
  await agent.locator('#composer.note-mode').waitFor({ state: 'detached' });
  assert.equal(await agent.locator('#mode-reply').isDisabled(), false);
  await agent.locator('#composer-input').fill('I am looking into it now.');
  await agent.locator('#composer-input').press('Enter');
  await visitor.locator(`${W.rows} .bubble`, { hasText: 'I am looking into it now.' }).waitFor({ timeout: 15000 });
  assert.deepEqual(visitorFrames.received.filter((f) => f.type === 'note' || /stuck at the depot/.test(f.text || '')), []);
  for (const s of seen) assert.deepEqual(s.errors, []);
  await close();
});

test('a visitor who says who they are mid-chat is named in the console at once', async () => {
  const rae = await server.createAgent({ email: 'rae@example.com', name: 'Rae', capacity: 5 });
  const { agent, visitor, seen, close } = await agentAndVisitor(rae, 'Hi, I have a question about my subscription');
  await agentTakes(visitor, agent);
  await agent.locator('#thread-name', { hasText: 'Visitor #' }).waitFor();
  // The shop's page signs the visitor in after the chat started.
  await visitor.evaluate(() => window.Switchboard.identify({ name: 'Grace Hopper', email: 'grace.h@example.com' }));
  await agent.locator('#thread-name', { hasText: 'Grace Hopper' }).waitFor({ timeout: 10000 });
  await agent.locator('#mine-list [data-conversation]', { hasText: 'Grace Hopper' }).waitFor();
  await agent.waitForFunction(() => document.querySelector('#customer-panel input[name="email"]')?.value === 'grace.h@example.com');
  for (const s of seen) assert.deepEqual(s.errors, []);
  await close();
});

test('an admin moves any open conversation: one with the bot to a team, another agent\'s to an agent', async () => {
  const dora = await server.createAgent({ email: 'dora@example.com', name: 'Dora', teams: ['returns'] });
  const ed = await server.createAgent({ email: 'ed@example.com', name: 'Ed' });
  const ctxs = await Promise.all([0, 1, 2, 3].map(() => browser.newContext({ viewport: { width: 1440, height: 900 } })));
  const [visitor, d, e, boss] = await Promise.all(ctxs.map((c) => c.newPage()));
  const seen = [watch(visitor), watch(d), watch(e), watch(boss)];
  await consoleLogin(boss, server, server.adminEmail, server.adminPassword);
  // The admin takes no conversations of their own here.
  await boss.locator('#me-status').selectOption('away');
  await boss.locator('#me-dot.away').waitFor();
  await consoleLogin(d, server, dora.email, dora.password);
  await consoleLogin(e, server, ed.email, ed.password);

  // The bot answers an order question: the conversation is with the bot.
  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'Where is my order SB-10442?');
  const withBot = boss.locator('#bot-list [data-conversation]');
  await withBot.first().waitFor({ timeout: 15000 });
  await withBot.first().click();
  await boss.locator('#thread-main').waitFor({ state: 'visible' });
  // A waiting conversation moves to a team, or (for an admin) to an agent.
  await boss.locator('#transfer-box').waitFor({ state: 'visible' });
  await boss.locator('#transfer-to option', { hasText: 'Ed (online' }).waitFor({ state: 'attached' });
  await boss.locator('#transfer-to').selectOption('team:returns');
  await boss.locator('#transfer').click();
  await d.locator('#mine-list [data-conversation] .team-chip', { hasText: 'returns' }).waitFor({ timeout: 10000 });

  // Now it is Dora's: the admin finds it under "Assigned to others" and hands it to Ed.
  const others = boss.locator('#others-list [data-conversation]');
  await others.first().waitFor({ timeout: 10000 });
  await others.first().click();
  await boss.locator('#thread-status', { hasText: 'Assigned to Dora' }).waitFor();
  await boss.locator('#transfer-box').waitFor({ state: 'visible' });
  assert.equal(await boss.locator('#transfer-to option', { hasText: 'Dora (' }).count(), 0, 'not to its own agent');
  await boss.locator('#transfer-to option', { hasText: 'Ed (online' }).waitFor({ state: 'attached' });
  await boss.locator('#transfer-to').selectOption({ label: await boss.locator('#transfer-to option', { hasText: 'Ed (online' }).textContent() });
  await boss.locator('#transfer').click();
  await e.locator('#mine-list [data-conversation]').first().waitFor({ timeout: 10000 });
  await d.locator('#mine-list [data-conversation]').waitFor({ state: 'detached', timeout: 10000 });
  await boss.locator('#thread-status', { hasText: 'Assigned to Ed' }).waitFor();
  // The admin may also answer in it and close it.
  await boss.locator('#composer').waitFor({ state: 'visible' });
  assert.equal(await boss.locator('#close-conv').isHidden(), false);

  await shot(boss, 'console-admin-transfer');
  for (const s of seen) assert.deepEqual(s.errors, []);
  for (const c of ctxs) await c.close();
});

test('after a transfer the widget stops naming the previous agent, then names the new one', async () => {
  const ann = await server.createAgent({ email: 'ann@example.com', name: 'Ann', capacity: 50 });
  const ben = await server.createAgent({ email: 'ben@example.com', name: 'Ben', capacity: 50 });
  const vCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const aCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const bCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await vCtx.newPage();
  const a = await aCtx.newPage();
  const b = await bCtx.newPage();
  await consoleLogin(a, server, ann.email, ann.password);

  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'Can someone change my subscription?');
  const id = await visitor.evaluate(() => JSON.parse(localStorage.getItem('switchboard.demo.resume')).conversation_id);
  const annHas = a.locator(`#mine-list [data-conversation="${id}"]`);
  const handoff = visitor.locator('#switchboard-widget .handoff button');
  for (let i = 0; i < 50 && !(await annHas.count()); i++) {
    if (await handoff.isVisible()) await handoff.click();
    await a.waitForTimeout(200);
  }
  await annHas.click();
  await a.locator('#composer-input').fill('Ann here, let me look.');
  await a.locator('#composer-input').press('Enter');
  const status = visitor.locator('#switchboard-widget .status');
  await status.filter({ hasText: 'Chatting with Ann' }).waitFor({ timeout: 10000 });

  // Ann hands the conversation to Ben: the widget must not go on saying "Ann".
  await consoleLogin(b, server, ben.email, ben.password);
  await a.locator('#transfer-to option', { hasText: 'Ben (online' }).waitFor({ state: 'attached', timeout: 10000 });
  await a.locator('#transfer-to').selectOption('agent:' + ben.id);
  await a.locator('#transfer').click();
  await b.locator(`#mine-list [data-conversation="${id}"]`).waitFor({ timeout: 10000 });
  await visitor.waitForTimeout(500);
  assert.doesNotMatch(await status.textContent(), /Ann/, 'the header no longer names Ann');
  assert.equal(await status.textContent(), 'An agent is with you');

  await b.locator(`#mine-list [data-conversation="${id}"]`).click();
  await b.locator('#composer-input').fill('Hi, Ben here, I will take it from here.');
  await b.locator('#composer-input').press('Enter');
  await status.filter({ hasText: 'Chatting with Ben' }).waitFor({ timeout: 10000 });
  await shot(visitor, 'widget-after-transfer');
  await vCtx.close();
  await aCtx.close();
  await bCtx.close();
});

test('keyboard focus stays on the conversation list while messages and typing come in', async () => {
  const kim = await server.createAgent({ email: 'kim@example.com', name: 'Kim', capacity: 50 });
  const vCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const aCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await vCtx.newPage();
  const agent = await aCtx.newPage();
  const seen = watch(agent);
  await consoleLogin(agent, server, kim.email, kim.password);
  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'Hello, a question about grinders.');
  await agentTakes(visitor, agent);
  const id = await visitor.evaluate(() => JSON.parse(localStorage.getItem('switchboard.demo.resume')).conversation_id);

  // The agent tabs back to the list: the item keeps the focus whatever redraws the list.
  const focusedConversation = () => agent.evaluate(() => document.activeElement && document.activeElement.dataset.conversation);
  await agent.locator(`#mine-list [data-conversation="${id}"]`).focus();
  await visitor.locator(W.input).pressSequentially('Which one', { delay: 20 });
  await agent.locator(`#mine-list [data-conversation="${id}"] .typing-mini`).waitFor({ timeout: 10000 });
  assert.equal(await focusedConversation(), String(id), 'focus kept while the visitor types');
  await visitor.locator(W.input).fill('');
  await visitorSends(visitor, 'Which one do you recommend?');
  await agent.locator(`#mine-list [data-conversation="${id}"]`, { hasText: 'Which one do you recommend?' }).waitFor({ timeout: 10000 });
  assert.equal(await focusedConversation(), String(id), 'focus kept when a message comes in');
  await agent.keyboard.press('Enter');
  await agent.locator('#composer-input').waitFor({ state: 'visible' });
  assert.equal(await agent.evaluate(() => document.activeElement.id), 'composer-input', 'Enter opens it and goes to the reply box');
  assert.deepEqual(seen.errors, []);
  await vCtx.close();
  await aCtx.close();
});

test('keyboard: Claim and Close keep the focus in the conversation', async () => {
  const lea = await server.createAgent({ email: 'lea@example.com', name: 'Lea', capacity: 50 });
  const vCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const aCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await vCtx.newPage();
  const agent = await aCtx.newPage();
  const seen = watch(agent);
  await consoleLogin(agent, server, lea.email, lea.password);
  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'Do you sell gift cards?');
  const id = await visitor.evaluate(() => JSON.parse(localStorage.getItem('switchboard.demo.resume')).conversation_id);
  const focusedId = () => agent.evaluate(() => document.activeElement.id);

  // The bot has it: the agent opens it from the list and claims it with the keyboard.
  const item = agent.locator(`#bot-list [data-conversation="${id}"], #queue-list [data-conversation="${id}"]`);
  await item.first().waitFor({ timeout: 10000 });
  await item.first().focus();
  await agent.keyboard.press('Enter');
  await agent.locator('#claim').waitFor({ state: 'visible' });
  await agent.locator('#claim').focus();
  await agent.keyboard.press('Enter');
  await agent.locator('#claim').waitFor({ state: 'hidden', timeout: 10000 });
  await agent.waitForFunction(() => document.activeElement.id === 'composer-input', null, { timeout: 3000 }).catch(() => {});
  assert.equal(await focusedId(), 'composer-input', 'after Claim: the reply box');
  await agent.keyboard.type('Yes, from 10 to 100 euros.');
  await agent.keyboard.press('Enter');
  await visitor.locator('#switchboard-widget .msg.agent', { hasText: '100 euros' }).waitFor({ timeout: 10000 });

  // Closing from the keyboard leaves the focus in the conversation, not on the
  // page body: in the composer, which now writes private notes (the only thing
  // left to write in a closed conversation).
  await agent.locator('#close-conv').focus();
  await agent.keyboard.press('Enter');
  await agent.locator('#close-conv').waitFor({ state: 'hidden', timeout: 10000 });
  await agent.waitForFunction(() => document.activeElement.id === 'composer-input', null, { timeout: 3000 }).catch(() => {});
  assert.equal(await focusedId(), 'composer-input', 'after Close: the note box');
  await agent.locator('#composer.note-mode').waitFor();
  assert.deepEqual(seen.errors, []);
  await vCtx.close();
  await aCtx.close();
});
