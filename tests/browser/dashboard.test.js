// The operator dashboard in a real browser: an admin signs in with a key, sees the queue pushed live, and cancels
// a waiting request from it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { anteroomDll, Bed, OLLAMA_MODEL } from '../node/harness.js';
import { holdSimulator, launchChromium, newUserPage, screenshot, WAIT_MS } from './browser.js';

const run = promisify(execFile);
let bed;
let simulator;
let browser;
let adminKey;
const dataDirectory = mkdtempSync(path.join(tmpdir(), 'anteroom-dashboard-'));

before(async () => {
  // The same command an operator runs, against the data directory the gateway will use.
  const created = await run('dotnet', [anteroomDll, 'keys', 'create', '--user', 'ops', '--admin', `--Anteroom:Data:Directory=${dataDirectory}`]);
  adminKey = created.stdout.trim();
  bed = await Bed.start(async (b) => {
    simulator = await b.simulator('simulator', [OLLAMA_MODEL], { parallel: 1, ttftMs: 50, tokensPerSecond: 40, outputTokens: 40 });
    const gateway = await b.gateway('gateway', [
      { name: 'gpu', url: simulator.url, protocol: 'ollama', slots: 1, models: [OLLAMA_MODEL] },
    ], {
      'Data:Directory': dataDirectory,
      'Estimates:TimeToFirstTokenMs': 50,
      'Estimates:TokensPerSecond': 40,
      'Estimates:OutputTokens': 40,
    });
    b.url = gateway.url;
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await bed?.stop();
  rmSync(dataDirectory, { recursive: true, force: true });
});

/** Opens a native stream as one user (a session cookie of its own) and collects its events until it ends. */
function openStream(user) {
  const controller = new AbortController();
  const stream = { events: [], requestId: null, controller };
  stream.ready = (async () => {
    const response = await fetch(`${bed.url}/chat/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie: `anteroom_session=${user.padEnd(32, '0')}` },
      body: JSON.stringify({ message: `hello from ${user}` }),
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    stream.requestId = response.headers.get('x-request-id');
    stream.ended = (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        for (const match of buffer.matchAll(/^event: (\w+)$/gm)) stream.events.push(match[1]);
        buffer = buffer.slice(buffer.lastIndexOf('\n') + 1);
      }
    })().catch(() => {});
  })();
  return stream;
}

describe('the operator dashboard', () => {
  test('shows the queue live and cancels a waiting request', async () => {
    // Some finished work first, so the charts and the usage table have something to show.
    for (const user of ['dddd', 'eeee', 'dddd']) {
      const warmup = openStream(user);
      await warmup.ready;
      await warmup.ended;
      assert.equal(warmup.events.at(-1), 'done');
    }

    await holdSimulator(simulator, true);
    const page = await newUserPage(browser, `${bed.url}/admin`, { width: 1280, height: 900 });
    await page.getByTestId('admin-key-input').fill(adminKey);
    await page.getByTestId('admin-key-form').locator('button[type="submit"]').click();
    await page.getByTestId('live-indicator').filter({ hasText: 'live' }).waitFor({ timeout: WAIT_MS });

    // One at a time, so the first runs and the others wait in this order.
    const streams = [];
    for (const user of ['aaaa', 'bbbb', 'cccc']) {
      const stream = openStream(user);
      await stream.ready;
      streams.push(stream);
    }
    const [running, doomed, last] = streams;
    await page.locator(`[data-testid="running-table"] tr[data-request-id="${running.requestId}"]`).waitFor({ timeout: WAIT_MS });
    const doomedRow = page.locator(`[data-testid="waiting-table"] tr[data-request-id="${doomed.requestId}"]`);
    await doomedRow.waitFor({ timeout: WAIT_MS });
    await page.locator(`[data-testid="waiting-table"] tr[data-request-id="${last.requestId}"]`).waitFor({ timeout: WAIT_MS });
    await screenshot(page, 'dashboard-queued.png', { fullPage: true });

    await doomedRow.getByTestId('cancel').click();
    await doomedRow.waitFor({ state: 'detached', timeout: WAIT_MS });
    await doomed.ended;
    assert.ok(doomed.events.includes('cancelled'), `events: ${doomed.events}`);

    await holdSimulator(simulator, false);
    await Promise.all([running.ended, last.ended]);
    assert.equal(running.events.at(-1), 'done');
    assert.equal(last.events.at(-1), 'done');
    await page.locator('[data-testid="waiting-table"] tr[data-request-id]').first().waitFor({ state: 'detached', timeout: WAIT_MS });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
