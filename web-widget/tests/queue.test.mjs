// No agent online: the visitor waits in the queue and sees its position; the
// conversation reaches the agent when she logs in; the agent closes it, the
// visitor rates it, and the rating shows in the console (live and after a reload).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, watch, shot, W,
  openWidget, visitorSends, consoleLogin, agentTakes,
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

/** Waits until the widget shows a queue position; asks for a person if the bot has the conversation. */
async function waitForQueuePosition(page) {
  const note = page.locator('#switchboard-widget .queue');
  const handoff = page.locator('#switchboard-widget .handoff button');
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    if (await note.isVisible()) {
      const pos = await note.getAttribute('data-position');
      if (pos) return Number(pos);
    }
    if (await handoff.isVisible()) {
      await shot(page, 'widget-bot');
      await handoff.click();
    }
    await page.waitForTimeout(200);
  }
  throw new Error('no queue position shown');
}

test('queue position while no agent is online, then delivery, close, rating', async () => {
  const ada = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const bob = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const adaPage = await ada.newPage();
  const bobPage = await bob.newPage();
  const seen = watch(adaPage);

  // One conversation at a time for the agent, so the queue moves one by one.
  const adminToken = await server.login(server.adminEmail, server.adminPassword);
  const admin = await server.api('GET', '/api/me', undefined, adminToken);
  await server.api('PATCH', `/api/agents/${admin.id}`, { capacity: 1 }, adminToken);

  await adaPage.goto(server.url + '/');
  await adaPage.locator('#signin').click(); // the host page calls Switchboard.identify
  await openWidget(adaPage);
  await visitorSends(adaPage, 'Is anyone there? I need to change my delivery address.');
  assert.equal(await waitForQueuePosition(adaPage), 1);
  assert.match(await adaPage.locator('#switchboard-widget .queue').textContent(), /#1/);

  await bobPage.goto(server.url + '/');
  await openWidget(bobPage);
  await visitorSends(bobPage, 'Hello, question about a refund');
  assert.equal(await waitForQueuePosition(bobPage), 2, 'the second visitor is second in line');
  await shot(adaPage, 'widget-queued');

  // The agent logs in: the head of the queue reaches her.
  const agentCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const agent = await agentCtx.newPage();
  const aSeen = watch(agent);
  await consoleLogin(agent, server, server.adminEmail, server.adminPassword);
  await agentTakes(adaPage, agent);
  await agent.locator('#thread-log .msg.visitor .bubble', { hasText: 'change my delivery address' }).waitFor({ timeout: 10000 });
  await adaPage.locator('#switchboard-widget .queue').waitFor({ state: 'hidden', timeout: 10000 });
  // identify() from the host page reached the customer profile.
  await agent.locator('#customer-panel input[name="email"]').waitFor({ timeout: 10000 });
  assert.equal(await agent.locator('#customer-panel input[name="name"]').inputValue(), 'Ada Lovelace');
  assert.equal(await agent.locator('#customer-panel input[name="email"]').inputValue(), 'ada@example.com');

  // What the NLP pipeline found shows beside the visitor's message; bot replies are marked on both sides.
  await agent.locator('#thread-log .msg.visitor .nlp .chip').first().waitFor({ timeout: 10000 });
  const widgetBots = await adaPage.locator('#switchboard-widget .msg.bot').count();
  assert.equal(await agent.locator('#thread-log .msg.bot').count(), widgetBots);
  for (const tag of await adaPage.locator('#switchboard-widget .msg.bot .tag').allTextContents()) assert.equal(tag, 'Bot');
  for (const tag of await agent.locator('#thread-log .msg.bot .tag').allTextContents()) assert.equal(tag, 'Bot');

  await agent.locator('#composer-input').fill('Hi, I can help with that. What is the new address?');
  await agent.locator('#composer-input').press('Enter');
  await adaPage.locator('#switchboard-widget .msg.agent', { hasText: 'new address' }).waitFor({ timeout: 10000 });

  // The agent closes; the visitor rates.
  await agent.locator('#close-conv').click();
  await adaPage.locator('#switchboard-widget .rating').waitFor({ state: 'visible', timeout: 10000 });
  await shot(adaPage, 'widget-rating');
  await adaPage.locator('#switchboard-widget .star[data-score="4"]').click();
  await adaPage.locator('#switchboard-widget .rating textarea').fill('Quick and kind');
  await adaPage.locator('#switchboard-widget .rating button[type="submit"]').click();
  await adaPage.locator('#switchboard-widget .rating', { hasText: 'Thank you' }).waitFor();

  // The rating shows in the console, live …
  await agent.locator('#thread-rating[data-score="4"]').waitFor({ timeout: 10000 });
  assert.match(await agent.locator('#thread-rating').textContent(), /4\/5.*Quick and kind/);
  await agent.locator('#closed-list [data-conversation] .stars-mini').first().waitFor();
  await shot(agent, 'console-rated');

  // … and after a reload of the console.
  await agent.reload();
  await agent.locator('#closed-list [data-conversation]').first().waitFor({ timeout: 10000 });
  await agent.locator('#closed-list [data-conversation]').first().click();
  await agent.locator('#thread-rating[data-score="4"]').waitFor({ timeout: 10000 });

  // The second visitor moves up and reaches the agent too.
  await agentTakes(bobPage, agent);
  await agent.locator('#thread-log .msg.visitor .bubble', { hasText: 'question about a refund' }).waitFor({ timeout: 10000 });

  // The dashboard reflects the rating.
  await agent.locator('.nav-item[data-view="dashboard"]').click();
  await agent.locator('#stat-cards [data-stat="Avg rating"] .value', { hasText: '4' }).waitFor({ timeout: 10000 });
  await shot(agent, 'console-dashboard');

  // The customers page lists both visitors.
  await agent.locator('.nav-item[data-view="customers"]').click();
  await agent.waitForFunction(() => document.querySelectorAll('#customer-rows tr').length >= 2, null, { timeout: 10000 });
  await shot(agent, 'console-customers');

  assert.deepEqual(seen.errors, []);
  assert.deepEqual(aSeen.errors, []);
  await ada.close();
  await bob.close();
  await agentCtx.close();
});

test('a rating given while the network is down reaches the console once it is back', async () => {
  const rita = await server.createAgent({ email: 'rita@example.com', name: 'Rita', capacity: 5 });
  const vCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const aCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const visitor = await vCtx.newPage();
  const agent = await aCtx.newPage();
  const seen = watch(visitor);
  await consoleLogin(agent, server, rita.email, rita.password);
  await visitor.goto(server.url + '/');
  await openWidget(visitor);
  await visitorSends(visitor, 'I would like to cancel my order, please.');
  await agentTakes(visitor, agent);
  await agent.locator('#close-conv').click();
  await visitor.locator('#switchboard-widget .rating').waitFor({ state: 'visible', timeout: 10000 });

  // The visitor's network drops; they rate anyway.
  await vCtx.setOffline(true);
  await visitor.locator('#switchboard-widget .banner', { hasText: 'offline' }).waitFor({ timeout: 3000 });
  await visitor.locator('#switchboard-widget .star[data-score="5"]').click();
  await visitor.locator('#switchboard-widget .rating textarea').fill('Sorted while my train was in a tunnel');
  await visitor.locator('#switchboard-widget .rating button[type="submit"]').click();
  await visitor.locator('#switchboard-widget .rating', { hasText: 'Thank you' }).waitFor();

  // Back online: the rating is not lost.
  await vCtx.setOffline(false);
  await agent.locator('#thread-rating[data-score="5"]').waitFor({ timeout: 15000 });
  assert.match(await agent.locator('#thread-rating').textContent(), /5\/5.*tunnel/);
  assert.deepEqual(seen.errors, []);
  await vCtx.close();
  await aCtx.close();
});
