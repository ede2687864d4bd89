// The widget on a 375 px phone and from the keyboard alone: it fills the
// screen, nothing overflows sideways, it is operable without a mouse and
// carries ARIA labels; the pre-chat form and the offline banner work.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import {
  startServer, launchBrowser, watch, shot, W, openWidget, visitorSends, widgetTranscript, consoleLogin, consoleTranscript, agentTakes,
} from './server.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('the widget on a phone-sized screen', async () => {
  const ctx = await browser.newContext({
    viewport: { width: 375, height: 667 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const page = await ctx.newPage();
  const seen = watch(page);
  await page.goto(server.url + '/');
  await shot(page, 'phone-demo-page');

  const launcher = page.locator(W.launcher);
  const box = await launcher.boundingBox();
  assert.ok(box.x + box.width <= 375 && box.y + box.height <= 667, 'launcher on screen');
  assert.ok(box.width >= 44 && box.height >= 44, 'launcher is a comfortable touch target');
  await launcher.tap();
  const panel = await page.locator(W.panel).boundingBox();
  assert.equal(Math.round(panel.width), 375, 'panel fills the width');
  assert.ok(panel.height >= 600, 'panel fills the height');

  await visitorSends(page, 'Grüße from my phone — do you ship to Norway?');
  const input = await page.locator(W.input).boundingBox();
  assert.ok(input.y + input.height <= 667, 'composer on screen');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 375, `no sideways scrolling (scrollWidth ${overflow})`);
  await shot(page, 'phone-widget');

  await page.locator('#switchboard-widget button[aria-label="Minimise chat"]').tap();
  await page.locator(W.panel).waitFor({ state: 'hidden' });
  assert.deepEqual(seen.errors, []);
  await ctx.close();
});

test('keyboard only, with ARIA labels', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  await page.goto(server.url + '/');
  const launcher = page.locator(W.launcher);
  assert.equal(await launcher.getAttribute('aria-label'), 'Open chat');
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');

  // Tab through the host page until the launcher has focus, then open it with Enter.
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => {
      const host = document.querySelector('#switchboard-widget');
      return document.activeElement === host && host.shadowRoot.activeElement?.classList.contains('launcher');
    });
  }
  assert.ok(reached, 'the launcher is reachable with Tab');
  await page.keyboard.press('Enter');
  await page.locator(W.panel).waitFor({ state: 'visible' });
  assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
  assert.equal(await page.locator(W.panel).getAttribute('role'), 'dialog');
  assert.equal(await page.locator('#switchboard-widget .log').getAttribute('role'), 'log');
  // Focus went to the message box: type and send with Enter.
  await page.keyboard.type('Typed without a mouse');
  await page.keyboard.press('Enter');
  await page.locator(`${W.rows} .bubble`, { hasText: 'Typed without a mouse' }).waitFor({ timeout: 10000 });
  for (const label of ['Message', 'Send message', 'Minimise chat']) {
    assert.equal(await page.locator(`#switchboard-widget [aria-label="${label}"]`).count(), 1, `has ${label}`);
  }
  // Escape closes and gives focus back to the launcher.
  await page.keyboard.press('Escape');
  await page.locator(W.panel).waitFor({ state: 'hidden' });
  const focused = await page.evaluate(() => document.querySelector('#switchboard-widget').shadowRoot.activeElement?.className);
  assert.equal(focused, 'launcher');
  await ctx.close();
});

test('host API, hostile host CSS and the optional pre-chat form', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const seen = watch(page);
  // A customer's page with hostile CSS and calls queued before the script loads.
  // It is written into a document of the server's origin: Chromium's local-network
  // checks refuse a WebSocket to 127.0.0.1 from a page that did not come from there.
  await page.goto(server.url + '/healthz');
  await page.setContent(`<!doctype html><html><head><title>Another shop</title>
      <style>* { all: unset !important; } div, button { color: red !important; }</style></head><body>
      <h1>Another shop</h1>
      <script>window.Switchboard = { q: [['on', 'open', () => { window.opened = (window.opened || 0) + 1; }]] };</script>
      <script src="${server.url}/widget.js" data-site="other" data-prechat data-title="Ask Other Shop" async></script>
    </body></html>`);
  await page.waitForFunction(() => window.Switchboard && window.Switchboard.version);
  const events = [];
  await page.exposeFunction('recordEvent', (e) => events.push(e));
  await page.evaluate(() => {
    window.Switchboard.on('close', () => window.recordEvent('close'));
    window.Switchboard.on('message', (m) => window.recordEvent('message:' + m.author.kind));
  });
  await page.evaluate(() => window.Switchboard.open());
  await page.locator(W.panel).waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => window.opened), 1, 'on("open") registered before the script loaded');
  assert.match(await page.locator('#switchboard-widget .title').textContent(), /Ask Other Shop/);
  // The host page's hostile CSS does not reach into the widget.
  const bg = await page.locator(W.launcher).evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.notEqual(bg, 'rgba(0, 0, 0, 0)');

  const form = page.locator('#switchboard-widget .prechat');
  await form.waitFor({ state: 'visible' });
  await shot(page, 'widget-prechat');
  await form.locator('input[name="name"]').fill('Lin Wei');
  await form.locator('input[name="email"]').fill('lin@example.com');
  await form.locator('button[type="submit"]').click();
  await form.waitFor({ state: 'hidden' });
  await visitorSends(page, 'Hello from another site');
  await page.evaluate(() => window.Switchboard.close());
  await page.locator(W.panel).waitFor({ state: 'hidden' });
  assert.ok(events.includes('close'));

  // identify() and the pre-chat form reached the customer profile.
  const token = await server.login(server.adminEmail, server.adminPassword);
  const deadline = Date.now() + 10000;
  let found = [];
  while (Date.now() < deadline && !found.length) {
    found = (await server.api('GET', '/api/customers?q=lin%40example.com', undefined, token)).customers;
    if (!found.length) await page.waitForTimeout(200);
  }
  assert.equal(found.length, 1);
  assert.equal(found[0].name, 'Lin Wei');
  assert.deepEqual(seen.errors, []);
  await ctx.close();
});

test('offline banner while the server restarts, then both sides resume', async () => {
  const own = await startServer();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  const agent = await agentCtx.newPage();
  await consoleLogin(agent, own, own.adminEmail, own.adminPassword);
  await page.goto(own.url + '/');
  await openWidget(page);
  await visitorSends(page, 'Before the restart');
  await agentTakes(page, agent);
  await agent.locator('#thread-log .bubble', { hasText: 'Before the restart' }).waitFor({ timeout: 10000 });
  await own.stop({ keepData: true });
  await agent.locator('#conn-banner', { hasText: 'Reconnecting' }).waitFor({ timeout: 10000 });
  const banner = page.locator('#switchboard-widget .banner', { hasText: 'offline' });
  await banner.waitFor({ state: 'visible', timeout: 10000 });
  // Written while offline: shown as waiting, sent once the connection is back.
  await page.locator(W.input).fill('Written while offline');
  await page.locator(W.input).press('Enter');
  await page.locator('#switchboard-widget .msg.pending', { hasText: 'Written while offline' }).waitFor();
  await shot(page, 'widget-offline');
  const again = await startServer({ data: own.dataDir, listen: `127.0.0.1:${own.port}`, password: own.adminPassword });
  try {
    await banner.waitFor({ state: 'hidden', timeout: 45000 });
    await page.locator(`${W.rows} .bubble`, { hasText: 'Written while offline' }).waitFor({ timeout: 10000 });
    await visitorSends(page, 'After the restart');
    const rows = await widgetTranscript(page);
    const seqs = rows.map((r) => r.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'no duplicate after the restart');
    const mine = rows.filter((r) => r.author === 'visitor').map((r) => r.text);
    assert.deepEqual(mine, ['Before the restart', 'Written while offline', 'After the restart']);
    assert.equal(await page.locator('#switchboard-widget .msg.pending').count(), 0);

    // The console came back on its own and shows the same conversation, nothing doubled.
    await agent.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 45000 });
    await agent.locator('#thread-log .bubble', { hasText: 'After the restart' }).waitFor({ timeout: 10000 });
    const consoleRows = await consoleTranscript(agent);
    assert.deepEqual(consoleRows, rows, 'console and widget agree after the restart');
  } finally {
    await agentCtx.close();
    await ctx.close();
    await again.stop();
    rmSync(own.dataDir, { recursive: true, force: true });
  }
});

test('a rejected token (4501) makes the widget start anew and the console ask for a login', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  await page.goto(server.url + '/');
  await page.evaluate(() => {
    localStorage.setItem('switchboard.demo.token', JSON.stringify('v1.1.1.forged-token'));
    localStorage.setItem('switchboard.demo.resume', JSON.stringify({ conversation_id: 1, last_seq: 3 }));
  });
  await page.reload();
  await openWidget(page);
  await visitorSends(page, 'Hello with a fresh identity');
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('switchboard.demo.token')));
  assert.ok(token && token !== 'v1.1.1.forged-token', 'a new token replaced the rejected one');
  assert.equal(await page.locator('#switchboard-widget .banner').isVisible(), false);

  await page.goto(server.url + '/console');
  await page.evaluate(() => localStorage.setItem('switchboard.console.token', JSON.stringify('forged')));
  await page.reload();
  await page.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
  assert.match(await page.locator('#login-error').textContent(), /sign in again/);
  await shot(page, 'console-login');
  await ctx.close();
});

test('the browser going offline shows at once on both sides; what was written meanwhile arrives once it is back', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  const agent = await agentCtx.newPage();
  const seen = watch(page);
  await consoleLogin(agent, server, server.adminEmail, server.adminPassword);
  await page.goto(server.url + '/');
  await openWidget(page);
  await visitorSends(page, 'Before the network dropped');
  await agentTakes(page, agent);

  // The visitor's network goes away: the widget says so and holds what is written.
  await ctx.setOffline(true);
  const banner = page.locator('#switchboard-widget .banner', { hasText: 'offline' });
  await banner.waitFor({ state: 'visible', timeout: 3000 });
  await page.locator(W.input).fill('Written without a network');
  await page.locator(W.input).press('Enter');
  await page.locator('#switchboard-widget .msg.pending .meta', { hasText: 'Waiting for connection' }).waitFor({ timeout: 3000 });
  // A button that needs the server says why it did nothing (it was silent).
  await page.locator('#switchboard-widget .text-btn', { hasText: 'End chat' }).click();
  await page.locator('#switchboard-widget .banner', { hasText: 'end the chat again once the chat is back' }).waitFor({ timeout: 3000 });
  await agent.locator('#composer-input').fill('Replied while the visitor was offline');
  await agent.locator('#composer-input').press('Enter');
  await shot(page, 'widget-network-offline');

  // The agent's network goes away too: the console says so.
  await agentCtx.setOffline(true);
  await agent.locator('#conn-banner', { hasText: 'Reconnecting' }).waitFor({ timeout: 3000 });

  // Both come back, resume, and agree, nothing lost and nothing doubled.
  await agentCtx.setOffline(false);
  await ctx.setOffline(false);
  await banner.waitFor({ state: 'hidden', timeout: 15000 });
  await agent.locator('#conn-banner').waitFor({ state: 'hidden', timeout: 15000 });
  await page.locator(`${W.rows} .bubble`, { hasText: 'Written without a network' }).waitFor({ timeout: 10000 });
  await page.locator(`${W.rows} .bubble`, { hasText: 'Replied while the visitor was offline' }).waitFor({ timeout: 10000 });
  await agent.locator('#thread-log .bubble', { hasText: 'Written without a network' }).waitFor({ timeout: 10000 });
  await page.waitForTimeout(500);
  const rows = await widgetTranscript(page);
  assert.deepEqual(
    rows.filter((r) => r.author !== 'bot').map((r) => r.text),
    ['Before the network dropped', 'Replied while the visitor was offline', 'Written without a network'],
  );
  assert.deepEqual(await consoleTranscript(agent), rows, 'console and widget agree');
  assert.deepEqual(seen.errors, []);
  await agentCtx.close();
  await ctx.close();
});

test('the console on a phone: the agent still sees their status, sets it and signs out', async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const agent = await ctx.newPage();
  const seen = watch(agent);
  await consoleLogin(agent, server, server.adminEmail, server.adminPassword); // waits for the visible online dot
  for (const id of ['#me-name', '#me-status', '#me-capacity', '#logout']) {
    assert.ok(await agent.locator(id).isVisible(), `${id} is visible on a phone`);
  }
  assert.equal(await agent.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true, 'no sideways scroll');
  await shot(agent, 'console-phone');
  await agent.locator('#me-status').selectOption('away');
  await agent.locator('#me-dot.away').waitFor({ timeout: 10000 });
  await agent.locator('#me-status').selectOption('online');
  await agent.locator('#me-dot.online').waitFor({ timeout: 10000 });
  await agent.locator('#logout').click();
  await agent.locator('#login').waitFor({ state: 'visible' });
  assert.deepEqual(seen.errors, []);
  await ctx.close();
});

test('keyboard: ending the chat moves the focus to the rating, which is given without a mouse', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const seen = watch(page);
  await page.goto(server.url + '/');
  await openWidget(page);
  await visitorSends(page, 'Just a quick question, never mind.');
  const focused = () => page.evaluate(() => {
    const el = document.querySelector('#switchboard-widget').shadowRoot.activeElement;
    return el ? el.getAttribute('aria-label') || el.textContent.trim() : null;
  });

  // Shift+Tab from the message box to "End chat", then Enter.
  const end = page.locator('#switchboard-widget button', { hasText: 'End chat' });
  await end.waitFor({ state: 'visible', timeout: 10000 });
  for (let i = 0; i < 10 && (await focused()) !== 'End chat'; i++) await page.keyboard.press('Shift+Tab');
  assert.equal(await focused(), 'End chat');
  await page.keyboard.press('Enter');
  await page.locator('#switchboard-widget .rating').waitFor({ state: 'visible', timeout: 10000 });
  await page.waitForFunction(() => document.querySelector('#switchboard-widget').shadowRoot.activeElement?.classList.contains('star'), null, { timeout: 3000 });

  // Arrow keys pick the score, Tab reaches the comment and the button.
  await page.keyboard.press('ArrowRight');
  assert.equal(await focused(), '2 stars');
  await page.keyboard.press('Tab');
  await page.keyboard.type('Fine');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.locator('#switchboard-widget .rating', { hasText: 'Thank you' }).waitFor();
  assert.equal(await focused(), 'Message', 'the form is gone: back to the message box');
  // Escape still closes the panel: the focus never left it.
  await page.keyboard.press('Escape');
  await page.locator(W.panel).waitFor({ state: 'hidden' });
  assert.deepEqual(seen.errors, []);
  await ctx.close();
});
