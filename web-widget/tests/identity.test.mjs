// Identity verification in the browser: the host page passes a user id and
// the HMAC its backend computed; the same user on a second browser (no shared
// storage) sees the same conversation, an anonymous browser does not, and
// `Switchboard.reset()` on sign-out forgets it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startServer, launchBrowser, watch, W, openWidget, visitorSends, widgetTranscript, consoleLogin } from './server.mjs';

const SECRET = 'identity-secret-for-tests';
const sign = (user) => createHmac('sha256', SECRET).update(user).digest('hex');

let server;
let browser;

before(async () => {
  server = await startServer({ env: { SWITCHBOARD_IDENTITY_SECRET: SECRET } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A fresh browser profile on the demo page, signed in as `user` (or anonymous). */
async function device(user) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const seen = watch(page);
  await page.goto(server.url + '/');
  await page.waitForFunction(() => window.Switchboard && window.Switchboard.version);
  if (user) {
    await page.evaluate(([id, hash]) => window.Switchboard.identify({ id, hash, name: 'Grace' }), [user, sign(user)]);
  }
  await openWidget(page);
  return { ctx, page, seen };
}

const texts = async (page) => (await widgetTranscript(page)).map((r) => r.text);

test('a signed-in user finds their conversation on another device', async () => {
  const one = await device('grace-1906');
  await visitorSends(one.page, 'Sent from my laptop, order #A-1001');

  const two = await device('grace-1906');
  await two.page.locator(`${W.rows} .bubble`, { hasText: 'Sent from my laptop' }).waitFor({ timeout: 15000 });
  await visitorSends(two.page, 'And this from my phone');
  await one.page.locator(`${W.rows} .bubble`, { hasText: 'And this from my phone' }).waitFor({ timeout: 15000 });

  const stranger = await device(null);
  await visitorSends(stranger.page, 'I am someone else');
  assert.ok(!(await texts(stranger.page)).some((t) => t.includes('Sent from my laptop')));

  // A wrong signature is refused; the widget stops instead of retrying forever.
  const forged = await browser.newContext();
  const fpage = await forged.newPage();
  await fpage.goto(server.url + '/');
  await fpage.waitForFunction(() => window.Switchboard && window.Switchboard.version);
  await fpage.evaluate((hash) => window.Switchboard.identify({ id: 'grace-1906', hash }), sign('someone-else'));
  await openWidget(fpage);
  await fpage.waitForTimeout(1500);
  assert.ok(!(await texts(fpage)).some((t) => t.includes('Sent from my laptop')), 'a forged hash shows nothing');

  // Signing out of the host site: reset() forgets the conversation in this browser.
  await two.page.evaluate(() => window.Switchboard.reset());
  await two.page.waitForFunction(
    () => !document.querySelector('#switchboard-widget').shadowRoot.textContent.includes('Sent from my laptop'),
  );

  for (const d of [one, two, stranger]) assert.deepEqual(d.seen.errors, []);
  for (const c of [one.ctx, two.ctx, stranger.ctx, forged]) await c.close();
});

test("signing out with reset() leaves no unread badge of the previous user's conversation", async () => {
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const agent = await agentCtx.newPage();
  await consoleLogin(agent, server, server.adminEmail, server.adminPassword);
  const user = await device('linus-1969');
  await visitorSends(user.page, 'Is my refund through yet?');
  // Earlier tests left conversations that may reach this agent too: open this one by its id.
  const id = await user.page.evaluate(() => JSON.parse(localStorage.getItem('switchboard.demo.resume')).conversation_id);
  const item = agent.locator(`#mine-list [data-conversation="${id}"]`);
  const handoff = user.page.locator('#switchboard-widget .handoff button');
  for (let i = 0; i < 75 && !(await item.count()); i++) {
    if (await handoff.isVisible()) await handoff.click();
    await agent.waitForTimeout(200);
  }
  await item.click();

  // The panel is closed when the answer comes: the launcher counts it.
  await user.page.evaluate(() => window.Switchboard.close());
  await agent.locator('#composer-input').fill('Yes, it went out this morning.');
  await agent.locator('#composer-input').press('Enter');
  const badge = user.page.locator('#switchboard-widget .launcher .badge');
  await badge.filter({ hasText: '1' }).waitFor({ timeout: 10000 });

  // The user signs out of the shop: the next person at this computer sees no unread reply.
  await user.page.evaluate(() => window.Switchboard.reset());
  await badge.waitFor({ state: 'hidden', timeout: 5000 });
  assert.equal(await user.page.locator(W.launcher).getAttribute('aria-label'), 'Open chat');
  assert.deepEqual(user.seen.errors, []);
  await user.ctx.close();
  await agentCtx.close();
});
