// The chat page in a real browser against a real gateway and a one-slot simulator: positions count down while
// waiting, tokens then stream; Stop frees the slot for the next user; a reload mid-answer resumes it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Bed, OLLAMA_MODEL } from '../node/harness.js';
import { holdSimulator, launchChromium, newUserPage, recordQueueStatuses, screenshot, WAIT_MS } from './browser.js';

let bed;
let simulator;
let browser;

before(async () => {
  bed = await Bed.start(async (b) => {
    // Slow enough that a waiting user is seen waiting, quick enough to keep the suite short.
    simulator = await b.simulator('simulator', [OLLAMA_MODEL], { parallel: 1, ttftMs: 50, tokensPerSecond: 40, outputTokens: 40 });
    const gateway = await b.gateway('gateway', [
      { name: 'gpu', url: simulator.url, protocol: 'ollama', slots: 1, models: [OLLAMA_MODEL] },
    ], { 'Estimates:TimeToFirstTokenMs': 50, 'Estimates:TokensPerSecond': 40, 'Estimates:OutputTokens': 40 });
    b.url = gateway.url;
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await bed?.stop();
});

/** Types a message and sends it; returns the assistant bubble it created. */
async function send(page, text) {
  const before = await page.locator('[data-testid="message"][data-role="assistant"]').count();
  await page.getByTestId('composer').fill(text);
  await page.getByTestId('send').click();
  const bubble = page.locator('[data-testid="message"][data-role="assistant"]').nth(before);
  await bubble.waitFor({ timeout: WAIT_MS });
  return bubble;
}

async function waitForState(bubble, states) {
  const wanted = Array.isArray(states) ? states : [states];
  await bubble.page().waitForFunction(
    ([element, list]) => list.includes(element.dataset.state),
    [await bubble.elementHandle(), wanted],
    { timeout: WAIT_MS },
  );
}

describe('the chat page', () => {
  test('three users at once: positions go down, then each answer streams in', async () => {
    await holdSimulator(simulator, true);
    const pages = [];
    for (let i = 0; i < 3; i++) pages.push(await newUserPage(browser, bed.url));
    await recordQueueStatuses(pages[2]);

    const first = await send(pages[0], 'First, please.');
    await waitForState(first, 'running');
    const second = await send(pages[1], 'Second, please.');
    await second.getByTestId('queue-status').filter({ hasText: 'position 1 of 1' }).waitFor({ timeout: WAIT_MS });
    const third = await send(pages[2], 'Third, please.');
    const thirdStatus = third.getByTestId('queue-status');
    await thirdStatus.filter({ hasText: 'position 2 of 2' }).waitFor({ timeout: WAIT_MS });
    assert.match(await thirdStatus.textContent(), /^In queue: position 2 of 2 · about \d+(\.\d+)? s$/);
    await screenshot(pages[2], 'chat-queued.png');

    await holdSimulator(simulator, false);
    for (const bubble of [first, second, third]) await waitForState(bubble, 'done');

    const seen = await pages[2].evaluate(() => window.__queueStatuses);
    const two = seen.findIndex((text) => text.includes('position 2 of 2'));
    const one = seen.findIndex((text) => text.includes('position 1 of 1'));
    assert.ok(two >= 0 && one > two, `positions seen in order: ${JSON.stringify(seen)}`);
    for (const bubble of [first, second, third]) {
      assert.ok((await bubble.getByTestId('answer').textContent()).trim().split(/\s+/).length > 5);
      assert.match(await bubble.getByTestId('answer-stats').textContent(), /waited/);
      assert.equal(await bubble.getByTestId('queue-status').count(), 0);
    }
    for (const page of pages) {
      assert.deepEqual(page.errors, []);
      await page.context().close();
    }
  });

  test('Stop on a running answer frees the slot: the next user starts at once', async () => {
    await holdSimulator(simulator, true);
    const running = await newUserPage(browser, bed.url);
    const waiting = await newUserPage(browser, bed.url);
    const held = await send(running, 'This one will be stopped.');
    await waitForState(held, 'running');
    const next = await send(waiting, 'My turn next.');
    await waitForState(next, 'queued');

    await held.getByTestId('stop').click();
    await waitForState(held, 'stopped');
    // Still held: the waiting user can only be running now because the stopped answer gave its slot back.
    await waitForState(next, 'running');

    await holdSimulator(simulator, false);
    await waitForState(next, 'done');
    for (const page of [running, waiting]) {
      assert.deepEqual(page.errors, []);
      await page.context().close();
    }
  });

  test('a reload mid-answer resumes the stream where it stopped, nothing lost', async () => {
    const page = await newUserPage(browser, bed.url);
    const bubble = await send(page, 'Tell me something long.');
    await page.waitForFunction(
      (element) => element.querySelector('[data-testid="answer"]')?.textContent.trim().split(/\s+/).length >= 4,
      await bubble.elementHandle(),
      { timeout: WAIT_MS },
    );
    const requestId = await bubble.getAttribute('data-request-id');

    await page.reload();
    const resumed = page.locator(`[data-testid="message"][data-request-id="${requestId}"]`);
    await resumed.waitFor({ timeout: WAIT_MS });
    await waitForState(resumed, 'done');

    const shown = (await resumed.getByTestId('answer').textContent()).trim();
    // The server's own record of that answer, read as this browser.
    const stored = await page.evaluate(async (id) => {
      const list = await (await fetch('/conversations')).json();
      for (const conversation of list.conversations) {
        const detail = await (await fetch(`/conversations/${conversation.id}`)).json();
        const answer = detail.messages.find((m) => m.role === 'assistant' && m.request_id === id);
        if (answer) return answer.content;
      }
      return null;
    }, requestId);
    assert.ok(stored, 'the answer is stored in its conversation');
    assert.equal(shown.replace(/\s+/g, ' '), stored.trim().replace(/\s+/g, ' '));
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
});
