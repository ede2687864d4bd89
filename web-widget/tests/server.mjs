// Shared helpers for the browser tests: the real `switchboard` binary on a
// free port with a temp data folder, a headless Chromium, and the few page
// actions every scenario needs. Nothing here fakes the server.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const webRoot = path.resolve(here, '..');
export const repoRoot = path.resolve(webRoot, '..');
export const resultsDir = path.join(webRoot, 'test-results');
mkdirSync(resultsDir, { recursive: true });

/** The server binary: $SWITCHBOARD_BIN, or a fresh `cargo build -p switchboard-server`. */
export function serverBinary() {
  if (process.env.SWITCHBOARD_BIN) return process.env.SWITCHBOARD_BIN;
  execFileSync('cargo', ['build', '-q', '-p', 'switchboard-server'], {
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target');
  return path.join(target, 'debug', 'switchboard');
}

/** A golden fixture from protocol/fixtures, e.g. fixture('client', 'send'). */
export function fixture(side, name) {
  return JSON.parse(readFileSync(path.join(repoRoot, 'protocol', 'fixtures', side, name + '.json'), 'utf8'));
}

/**
 * Starts `switchboard serve` on 127.0.0.1:0 (or `listen`) with a temp data
 * folder (or `data`), with extra environment `env` (e.g. SWITCHBOARD_* settings),
 * and resolves once it prints `listening on http://…`.
 */
export async function startServer({ data, listen, password, env } = {}) {
  const bin = serverBinary();
  const dataDir = data || mkdtempSync(path.join(tmpdir(), 'switchboard-web-'));
  const adminPassword = password || 'pw-' + Math.random().toString(36).slice(2, 12) + '-test';
  const child = spawn(bin, ['serve', '--listen', listen || '127.0.0.1:0', '--data', dataDir], {
    env: { ...process.env, SWITCHBOARD_ADMIN_PASSWORD: adminPassword, RUST_LOG: process.env.RUST_LOG || 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server printed no address within 60 s:\n' + output)), 60000);
    const onData = (chunk) => {
      output += chunk;
      const m = output.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${output}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise((resolve) => child.once('exit', resolve));

  const server = {
    url,
    port,
    dataDir,
    adminEmail: 'admin@localhost',
    adminPassword,
    output: () => output,
    async api(method, route, body, token) {
      const headers = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (token) headers.authorization = 'Bearer ' + token;
      const res = await fetch(url + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch (_) {
        json = null;
      }
      if (!res.ok) throw new Error(`${method} ${route} → ${res.status} ${text}`);
      return json;
    },
    async login(email, pw) {
      return (await server.api('POST', '/api/login', { email, password: pw })).token;
    },
    /** Creates an agent through the admin API and returns its credentials. */
    async createAgent({ email, name, password = 'agent-password-1', capacity = 5, role = 'agent', teams = [] }) {
      const admin = await server.login(server.adminEmail, adminPassword);
      const agent = await server.api('POST', '/api/agents', { email, name, password, role, capacity, teams }, admin);
      return { ...agent, password };
    },
    /** Stops the server; keeps the data folder when `keepData` (for a restart). */
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(timer);
      }
      if (!keepData && !data) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/**
 * Records what must never happen on a page: dialogs (alert from injected
 * HTML), uncaught errors. Dialogs are dismissed so nothing blocks.
 */
export function watch(page) {
  const seen = { dialogs: [], errors: [] };
  page.on('dialog', async (d) => {
    seen.dialogs.push(`${d.type()}: ${d.message()}`);
    if (d.type() !== 'confirm') await d.dismiss().catch(() => {});
  });
  page.on('pageerror', (err) => seen.errors.push(String(err)));
  return seen;
}

/** Every JSON frame the page sends and receives on its WebSockets. */
export function recordFrames(page) {
  const frames = { sent: [], received: [] };
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => {
      try {
        frames.sent.push(JSON.parse(f.payload));
      } catch (_) {
        /* not JSON */
      }
    });
    ws.on('framereceived', (f) => {
      try {
        frames.received.push(JSON.parse(f.payload));
      } catch (_) {
        /* not JSON */
      }
    });
  });
  return frames;
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(resultsDir, name + '.png') });
}

// ---- widget (visitor) actions; Playwright's CSS engine pierces the open shadow root

export const W = {
  launcher: '#switchboard-widget .launcher',
  panel: '#switchboard-widget .panel',
  input: '#switchboard-widget textarea[aria-label="Message"]',
  rows: '#switchboard-widget .log [data-seq]',
};

export async function openWidget(page) {
  await page.locator(W.launcher).click();
  await page.locator(W.panel).waitFor({ state: 'visible' });
}

/** Sends from the widget and waits until the server acknowledged it (the row has a seq). */
export async function visitorSends(page, text) {
  await page.locator(W.input).fill(text);
  await page.locator(W.input).press('Enter');
  await page
    .locator(`${W.rows}.mine .bubble`, { hasText: text.slice(0, 40) })
    .last()
    .waitFor({ timeout: 15000 });
}

/** The visitor's transcript as [{seq, author, text}], in DOM order. */
export async function widgetTranscript(page) {
  return page.locator(W.rows).evaluateAll((rows) =>
    rows.map((r) => ({ seq: Number(r.dataset.seq), author: r.dataset.author, text: r.querySelector('.bubble').textContent })),
  );
}

// ---- console (agent) actions

export async function consoleLogin(page, server, email, password) {
  await page.goto(server.url + '/console');
  await page.locator('#login-email').fill(email);
  await page.locator('#login-password').fill(password);
  await page.locator('#login-submit').click();
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('#me-dot.online').waitFor({ timeout: 15000 });
}

export async function consoleTranscript(page) {
  return page.locator('#thread-log [data-seq]').evaluateAll((rows) =>
    rows.map((r) => ({ seq: Number(r.dataset.seq), author: r.dataset.author, text: r.querySelector('.bubble').textContent })),
  );
}

/**
 * Gets the visitor's newest conversation in front of the agent: clicks the
 * widget's "Talk to a person" if the bot has it, claims it if it is queued,
 * and opens it in the console.
 */
export async function agentTakes(visitor, agent, { claim = true, timeout = 20000 } = {}) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const mine = agent.locator('#mine-list [data-conversation]');
    if ((await mine.count()) > 0) {
      await mine.first().click();
      await agent.locator('#thread-main').waitFor({ state: 'visible' });
      return;
    }
    const handoff = visitor.locator('#switchboard-widget .handoff button');
    if (await handoff.isVisible()) await handoff.click();
    const queued = agent.locator('#queue-list [data-conversation]');
    if (claim && (await queued.count()) > 0) {
      await queued.first().click();
      if (await agent.locator('#claim').isVisible()) await agent.locator('#claim').click();
    }
    await agent.waitForTimeout(300);
  }
  throw new Error('the conversation never reached the agent');
}

export function assertSeqsComplete(assert, transcript, label) {
  const seqs = transcript.map((r) => r.seq);
  const sorted = [...seqs].sort((a, b) => a - b);
  assert.deepEqual(seqs, sorted, `${label}: in seq order`);
  assert.equal(new Set(seqs).size, seqs.length, `${label}: no duplicates`);
  for (let i = 1; i < sorted.length; i++) assert.equal(sorted[i], sorted[i - 1] + 1, `${label}: no gap after seq ${sorted[i - 1]}`);
}
