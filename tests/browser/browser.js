// Shared pieces of the browser tests: Debian's Chromium driven by playwright-core, the simulator's hold switch,
// and where screenshots go. The servers come from the Node SDK tests' harness (real processes on free ports).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where the README's screenshots live; every run of the suite takes them again from the current build. */
export const screenshotsDirectory = path.resolve(here, '..', '..', 'docs', 'screenshots');

/** The longest any single wait in these tests may take before it fails the test. */
export const WAIT_MS = 30_000;

export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
}

/** A page in a context of its own: its own cookies, so its own Anteroom session (its own user). */
export async function newUserPage(browser, url, { width = 1100, height = 760 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()); });
  page.errors = errors;
  await page.goto(url);
  return page;
}

export async function screenshot(page, name, { fullPage = false } = {}) {
  mkdirSync(screenshotsDirectory, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(screenshotsDirectory, name), fullPage });
}

/** Holds or releases every generation of a simulator (its /sim/hold and /sim/release switch). */
export async function holdSimulator(simulator, held) {
  const response = await fetch(`${simulator.url}/sim/${held ? 'hold' : 'release'}`, { method: 'POST' });
  if (!response.ok) throw new Error(`simulator ${held ? 'hold' : 'release'}: ${response.status}`);
}

/**
 * Records, inside the page, every text the queue status of the newest assistant bubble shows, so a test can check
 * the order positions went by after the fact instead of racing to see each one.
 */
export async function recordQueueStatuses(page) {
  await page.evaluate(() => {
    window.__queueStatuses = [];
    const seen = window.__queueStatuses;
    const observer = new MutationObserver(() => {
      for (const element of document.querySelectorAll('[data-testid="queue-status"]')) {
        const text = element.textContent.trim();
        if (text && seen[seen.length - 1] !== text) seen.push(text);
      }
    });
    observer.observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}
