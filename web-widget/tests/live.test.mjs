// Visitor on the demo page ↔ agent in the console, live: delivery both ways,
// typing both ways, read receipts, safe rendering of HTML-looking text, reloads
// on both sides, and the frames the widget sends against the golden fixtures.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, watch, recordFrames, shot, fixture, W,
  openWidget, visitorSends, widgetTranscript, consoleLogin, consoleTranscript, agentTakes, assertSeqsComplete,
} from './server.mjs';

let server;
let browser;
let grace;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  grace = await server.createAgent({ email: 'grace@example.com', name: 'Grace', capacity: 5 });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('visitor and agent chat live, with typing, receipts, safe text and reloads', async () => {
  const visitorCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await visitorCtx.newPage();
  const agent = await agentCtx.newPage();
  const vSeen = watch(visitor);
  const aSeen = watch(agent);
  const frames = recordFrames(visitor);

  // The agent is online first, so the conversation is routed to her.
  await consoleLogin(agent, server, grace.email, grace.password);

  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'Hello! Where is my order SB-10442?');
  await agentTakes(visitor, agent);
  await agent.locator('#thread-log .msg.visitor .bubble', { hasText: 'Where is my order SB-10442?' }).waitFor();

  // Typing, visitor → agent.
  await visitor.locator(W.input).pressSequentially('I also wanted to ask', { delay: 20 });
  await agent.locator('#thread-typing', { hasText: 'typing' }).waitFor({ timeout: 10000 });
  await visitor.locator(W.input).fill('');

  // Typing, agent → visitor.
  await agent.locator('#composer-input').pressSequentially('Let me check', { delay: 20 });
  await visitor.locator('#switchboard-widget .typing', { hasText: 'typing' }).waitFor({ timeout: 10000 });

  // The reply arrives live, marked as from an agent, with a safe link.
  await agent.locator('#composer-input').fill('It left our warehouse today: https://example.com/track/SB-10442.');
  await agent.locator('#composer-input').press('Enter');
  const reply = visitor.locator('#switchboard-widget .msg.agent', { hasText: 'It left our warehouse today' });
  await reply.waitFor({ timeout: 10000 });
  assert.match(await reply.locator('.who').textContent(), /Grace/);
  assert.match(await reply.locator('.tag').textContent(), /Agent/);
  const link = reply.locator('a');
  assert.equal(await link.getAttribute('href'), 'https://example.com/track/SB-10442');
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer');
  assert.equal(await link.getAttribute('target'), '_blank');
  await visitor.locator('#switchboard-widget .typing').waitFor({ state: 'hidden' });

  // The agent has the conversation open, so the visitor's message shows as read.
  await visitor.locator('#switchboard-widget .msg.mine .receipt', { hasText: 'Read' }).first().waitFor({ timeout: 10000 });

  // HTML-looking text is text on both sides and runs nothing.
  const evil = '<img src=x onerror=alert(1)>';
  const evil2 = '<script>window.__pwned=1</script><b onmouseover="alert(2)">bold?</b> javascript:alert(3)';
  await visitorSends(visitor, evil);
  await visitorSends(visitor, evil2);
  const agentEvil = agent.locator('#thread-log .msg.visitor .bubble', { hasText: 'onerror' });
  await agentEvil.waitFor({ timeout: 10000 });
  assert.equal(await agentEvil.textContent(), evil);
  await agent.locator('#composer-input').fill(evil);
  await agent.locator('#composer-input').press('Enter');
  const visitorEvil = visitor.locator('#switchboard-widget .msg.agent .bubble', { hasText: 'onerror' });
  await visitorEvil.waitFor({ timeout: 10000 });
  assert.equal(await visitorEvil.textContent(), evil);
  await agent.locator('#thread-log .msg.visitor .bubble', { hasText: 'bold?' }).waitFor();
  assert.equal(await agent.locator('#thread-log .bubble *:not(a)').count(), 0);
  assert.equal(await visitor.locator('#switchboard-widget .log .bubble *:not(a)').count(), 0);
  assert.equal(await agent.locator('#thread-log a').count(), 1, 'only the https link became a link');
  await visitor.waitForTimeout(500);
  assert.deepEqual(vSeen.dialogs, [], 'no dialog on the visitor page');
  assert.deepEqual(aSeen.dialogs, [], 'no dialog in the console');
  assert.equal(await visitor.evaluate(() => window.__pwned), undefined);
  assert.equal(await agent.evaluate(() => window.__pwned), undefined);

  await shot(visitor, 'widget-desktop');
  await shot(agent, 'console-conversation');

  // Both sides agree on the whole conversation.
  const vBefore = await widgetTranscript(visitor);
  const aBefore = await consoleTranscript(agent);
  assertSeqsComplete(assert, vBefore, 'widget');
  assertSeqsComplete(assert, aBefore, 'console');
  assert.deepEqual(vBefore.map((r) => r.text), aBefore.map((r) => r.text), 'widget and console show the same messages');
  assert.ok(vBefore.length >= 5);

  // Reload the visitor's page: the same conversation, complete and in order.
  await visitor.reload();
  await openWidget(visitor);
  await visitor.waitForFunction(
    (n) => document.querySelector('#switchboard-widget').shadowRoot.querySelectorAll('.log [data-seq]').length >= n,
    vBefore.length,
    { timeout: 15000 },
  );
  await visitor.waitForTimeout(500); // anything doubled would have arrived by now
  const vAfter = await widgetTranscript(visitor);
  assert.deepEqual(vAfter, vBefore, 'widget after reload');

  // Reload the console: the conversation is still there, complete and in order.
  await agent.reload();
  await agent.locator('#app').waitFor({ state: 'visible' });
  await agent.locator('#mine-list [data-conversation]').first().click();
  await agent.waitForFunction((n) => document.querySelectorAll('#thread-log [data-seq]').length >= n, aBefore.length, { timeout: 15000 });
  await agent.waitForTimeout(500);
  const aAfter = await consoleTranscript(agent);
  assert.deepEqual(aAfter, aBefore, 'console after reload');

  // A message after both reloads still flows both ways.
  await visitorSends(visitor, 'Thanks, got it!');
  await agent.locator('#thread-log .msg.visitor .bubble', { hasText: 'Thanks, got it!' }).waitFor({ timeout: 10000 });
  await agent.locator('#composer-input').fill('You are welcome.');
  await agent.locator('#composer-input').press('Enter');
  await visitor.locator('#switchboard-widget .msg.agent .bubble', { hasText: 'You are welcome.' }).waitFor({ timeout: 10000 });
  assertSeqsComplete(assert, await widgetTranscript(visitor), 'widget at the end');

  // With the panel closed, a reply shows as an unread badge on the launcher.
  await visitor.evaluate(() => window.Switchboard.close());
  await agent.locator('#composer-input').fill('Anything else I can do?');
  await agent.locator('#composer-input').press('Enter');
  await visitor.locator('#switchboard-widget .launcher .badge', { hasText: '1' }).waitFor({ timeout: 10000 });
  assert.equal(await visitor.locator(W.launcher).getAttribute('aria-label'), 'Open chat, 1 unread');
  await visitor.locator(W.launcher).click();
  await visitor.locator('#switchboard-widget .launcher .badge').waitFor({ state: 'hidden' });

  // Every frame the widget sent has exactly the fields of its golden fixture.
  for (const [type, name] of [['visitor_hello', 'visitor_hello'], ['send', 'send'], ['typing', 'typing'], ['read', 'read']]) {
    const sent = frames.sent.find((f) => f.type === type);
    assert.ok(sent, `the widget sent a ${type}`);
    assert.deepEqual(Object.keys(sent).sort(), Object.keys(fixture('client', name)).sort(), `${type} fields`);
  }
  const hellos = frames.sent.filter((f) => f.type === 'visitor_hello');
  assert.equal(hellos[0].token, null, 'first visit: no token');
  assert.ok(hellos.at(-1).token, 'after the reload: the stored token');
  assert.ok(hellos.at(-1).resume.length === 1 && hellos.at(-1).resume[0].last_seq > 0, 'after the reload: a resume point');

  assert.deepEqual(vSeen.errors, [], 'no script error on the visitor page');
  assert.deepEqual(aSeen.errors, [], 'no script error in the console');
  await visitorCtx.close();
  await agentCtx.close();
});

test('unread replies still show on the launcher after the visitor goes to another page', async () => {
  const visitorCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await visitorCtx.newPage();
  const agent = await agentCtx.newPage();
  const vSeen = watch(visitor);
  // An agent of her own, so the conversation is the only one in her list.
  const noor = await server.createAgent({ email: 'noor@example.com', name: 'Noor', capacity: 5 });
  await consoleLogin(agent, server, noor.email, noor.password);

  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'Do you ship to Norway?');
  await agentTakes(visitor, agent);

  // The visitor minimises the chat; two replies come in.
  await visitor.locator('#switchboard-widget [aria-label="Minimise chat"]').click();
  for (const text of ['Yes, we do.', 'Shipping takes 3 to 5 days.']) {
    await agent.locator('#composer-input').fill(text);
    await agent.locator('#composer-input').press('Enter');
  }
  const badge = visitor.locator('#switchboard-widget .launcher .badge');
  await badge.filter({ hasText: '2' }).waitFor({ timeout: 10000 });

  // Another page of the shop: the replies are still unread, so the badge stays.
  await visitor.goto(server.url + '/?page=beans');
  await badge.filter({ hasText: '2' }).waitFor({ timeout: 10000 });
  assert.equal(await visitor.locator(W.launcher).getAttribute('aria-label'), 'Open chat, 2 unread');
  await shot(visitor, 'widget-unread-after-navigation');

  // Reading them clears it, and it stays cleared on the next page.
  await openWidget(visitor);
  await badge.waitFor({ state: 'hidden' });
  await agent.locator('#thread-log .msg.agent .meta', { hasText: 'Seen' }).last().waitFor({ timeout: 10000 });
  await visitor.goto(server.url + '/?page=help');
  await visitor.locator('#switchboard-widget .log [data-seq]').first().waitFor({ state: 'attached', timeout: 10000 });
  await visitor.waitForTimeout(500);
  assert.equal(await badge.isVisible(), false, 'no badge once read');
  assert.deepEqual(vSeen.errors, []);
  await visitorCtx.close();
  await agentCtx.close();
});

test('right-to-left messages read right to left on both sides, and so does the composer', async () => {
  const visitorCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await visitorCtx.newPage();
  const agent = await agentCtx.newPage();
  const omar = await server.createAgent({ email: 'omar@example.com', name: 'Omar', capacity: 5 });
  await consoleLogin(agent, server, omar.email, omar.password);

  const hebrew = 'שלום, איפה ההזמנה שלי?';
  const arabic = 'مرحبا، كيف يمكنني مساعدتك؟';
  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, hebrew);
  await agentTakes(visitor, agent);
  await agent.locator('#composer-input').fill(arabic);
  assert.equal(await agent.locator('#composer-input').evaluate((el) => getComputedStyle(el).direction), 'rtl', 'console composer');
  await agent.locator('#composer-input').press('Enter');
  await agent.locator('#composer-input').fill('Order SB-10442 left today.');
  await agent.locator('#composer-input').press('Enter');
  await visitor.locator('#switchboard-widget .msg.agent .bubble', { hasText: 'left today' }).waitFor({ timeout: 10000 });
  await visitor.locator(W.input).fill(hebrew);
  assert.equal(await visitor.locator(W.input).evaluate((el) => getComputedStyle(el).direction), 'rtl', 'widget composer');
  await visitor.locator(W.input).fill('');

  const direction = (loc) => loc.evaluate((el) => getComputedStyle(el).direction);
  const w = (text) => visitor.locator(`${W.rows} .bubble`, { hasText: text });
  const c = (text) => agent.locator('#thread-log .bubble', { hasText: text });
  assert.equal(await direction(w('שלום')), 'rtl', 'widget: Hebrew');
  assert.equal(await direction(w('مرحبا')), 'rtl', 'widget: Arabic');
  assert.equal(await direction(w('left today')), 'ltr', 'widget: English');
  assert.equal(await direction(c('שלום')), 'rtl', 'console: Hebrew');
  assert.equal(await direction(c('مرحبا')), 'rtl', 'console: Arabic');
  assert.equal(await direction(c('left today')), 'ltr', 'console: English');
  await shot(visitor, 'widget-rtl');
  await shot(agent, 'console-rtl');
  await visitorCtx.close();
  await agentCtx.close();
});

test('the demo page and the console log no error in the browser console', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const visitor = await ctx.newPage();
  const agent = await ctx.newPage();
  const errors = [];
  for (const page of [visitor, agent]) {
    page.on('console', (m) => m.type() === 'error' && errors.push(`${page.url()}: ${m.text()} (${m.location().url})`));
  }
  await consoleLogin(agent, server, grace.email, grace.password);
  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'Hello, just checking.');
  await agent.reload();
  await agent.locator('#me-dot.online').waitFor({ timeout: 15000 });
  await visitor.waitForTimeout(500);
  assert.deepEqual(errors, []);
  await ctx.close();
});
