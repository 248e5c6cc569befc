// The queue as each SDK sees it. Admission dispatches to a free slot before it answers, so once a stream's headers
// are back it either runs or waits, and a later request for a busy one-slot backend waits behind it.
//
// A full queue: the gateway holds one waiting request and its only backend has one slot and a long time to first
// token, so the first request runs, the second waits and the third is refused.
//
// A waiting stream: two one-slot backends (one of each protocol) with a 1 s time to first token; the second stream
// to each waits for the first, hears nothing an SDK could trip on meanwhile, and then completes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { RateLimitError } from 'openai';
import { Ollama } from 'ollama';
import { Bed, header, OLLAMA_MODEL, OPENAI_MODEL, startFullQueueBed } from './harness.js';

const messages = [{ role: 'user', content: 'Why is the sky blue?' }];
const OLLAMA_QUEUE_FULL = 'server busy, please try again.  maximum pending requests exceeded';

let bed;
let client;
let slow;
const running = new AbortController();
const waiting = new AbortController();

before(async () => {
  [bed, slow] = await Promise.all([
    startFullQueueBed(),
    Bed.start(async (b) => {
      const sim = await b.simulator('one-second simulator', [OLLAMA_MODEL, OPENAI_MODEL], { parallel: 2, ttftMs: 1000 });
      const gateway = await b.gateway('one-slot gateway', [
        { name: 'ollama-gpu', url: sim.url, protocol: 'ollama', slots: 1, models: [OLLAMA_MODEL] },
        { name: 'vllm-gpu', url: sim.url, protocol: 'openai', slots: 1, models: [OPENAI_MODEL] },
      ]);
      b.url = gateway.url;
    }),
  ]);
  client = new OpenAI({ baseURL: `${bed.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 20_000 });

  // Streaming answers send their headers right after admission, so each await returns once the gateway took it.
  await client.chat.completions.create({ model: OPENAI_MODEL, messages, stream: true }, { signal: running.signal });
  await client.chat.completions.create({ model: OPENAI_MODEL, messages, stream: true }, { signal: waiting.signal });
});

after(async () => {
  waiting.abort();
  running.abort();
  await Promise.all([bed?.stop(), slow?.stop()]);
});

/** A fetch for an SDK that also hands back, per call, the whole raw body the SDK read. */
function tappedFetch(bodies) {
  return async (...args) => {
    const response = await fetch(...args);
    if (!response.body) return response;
    const [forSdk, forTest] = response.body.tee();
    bodies.push(new Response(forTest).text());
    return new Response(forSdk, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

function assertRetryAfter(headers) {
  const seconds = header(headers, 'retry-after');
  assert.match(String(seconds), /^\d+$/, `Retry-After ${seconds} is whole seconds`);
  assert.ok(Number(seconds) >= 1, `Retry-After ${seconds} is at least 1`);
}

describe('a full queue', () => {
  test('openai client: chat.completions.create is a RateLimitError (429) with Retry-After', async () => {
    await assert.rejects(client.chat.completions.create({ model: OPENAI_MODEL, messages }), (error) => {
      assert.ok(error instanceof RateLimitError, `${error?.constructor?.name}: ${error?.message}`);
      assert.equal(error.status, 429);
      assert.equal(error.type, 'rate_limit_error');
      assert.equal(error.code, 'queue_full');
      assertRetryAfter(error.headers);
      const ms = header(error.headers, 'retry-after-ms');
      assert.match(String(ms), /^\d+$/, `retry-after-ms ${ms}`);
      return true;
    });
  });

  test('openai client: a stream is refused the same way, before any chunk', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: OPENAI_MODEL, messages, stream: true }),
      (error) => {
        assert.ok(error instanceof RateLimitError, `${error?.constructor?.name}: ${error?.message}`);
        assertRetryAfter(error.headers);
        return true;
      });
  });

  test('ollama client: chat is a ResponseError 503 with Ollama\'s own message and a Retry-After', async () => {
    const seen = [];
    const ollama = new Ollama({
      host: bed.url,
      // Only to read the refusal's headers, which ollama-js does not expose.
      fetch: async (...args) => {
        const response = await fetch(...args);
        seen.push(response);
        return response;
      },
    });
    for (const stream of [false, true]) {
      await assert.rejects(ollama.chat({ model: OPENAI_MODEL, messages, stream }), (error) => {
        assert.equal(error.name, 'ResponseError', `${error?.name}: ${error?.message}`);
        assert.equal(error.status_code, 503);
        assert.equal(error.message, OLLAMA_QUEUE_FULL);
        return true;
      });
      assert.equal(seen.at(-1).status, 503);
      assertRetryAfter(seen.at(-1).headers);
    }
  });

  test('ollama client: ps shows the model that runs', async () => {
    const ollama = new Ollama({ host: bed.url });
    const { models } = await ollama.ps();
    assert.deepEqual(models.map((m) => m.name), [OPENAI_MODEL]);
    assert.ok(!Number.isNaN(Date.parse(models[0].expires_at)), 'expires_at is a date');
  });
});

describe('a stream that waits for a slot', { concurrency: true }, () => {
  test('openai client (translated to an Ollama backend): the SDK skips the queue comments and gets the whole answer', async () => {
    const bodies = [];
    const plain = new OpenAI({ baseURL: `${slow.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 20_000 });
    const tapped = new OpenAI({ baseURL: `${slow.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 20_000, fetch: tappedFetch(bodies) });
    const params = { model: OLLAMA_MODEL, messages, stream: true, stream_options: { include_usage: true } };

    const first = await plain.chat.completions.create(params);
    const second = await tapped.chat.completions.create(params);
    const collect = async (stream) => {
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      return chunks;
    };
    const [, chunks] = await Promise.all([collect(first), collect(second)]);

    const raw = await bodies[0];
    assert.match(raw, /^: queued position=1 eta_ms=\d+\n\n/, 'the waiting stream began with its position');
    assert.doesNotMatch(raw, /^(id|event):/m, 'no id: or event: lines');
    const text = chunks.flatMap((c) => c.choices.map((choice) => choice.delta.content ?? '')).join('');
    assert.ok(text.trim().length > 0, 'the answer came after the wait');
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
    assert.ok(chunks.at(-1).usage.completion_tokens > 0);
  });

  test('ollama client (translated to an OpenAI backend): the waiting stream is silent NDJSON, then the whole answer', async () => {
    const bodies = [];
    const plain = new Ollama({ host: slow.url });
    const tapped = new Ollama({ host: slow.url, fetch: tappedFetch(bodies) });
    const params = { model: OPENAI_MODEL, messages, stream: true };

    const first = await plain.chat(params);
    const second = await tapped.chat(params);
    const collect = async (stream) => {
      const parts = [];
      for await (const part of stream) parts.push(part);
      return parts;
    };
    const [, parts] = await Promise.all([collect(first), collect(second)]);

    const raw = await bodies[0];
    const lines = raw.split('\n').filter((line) => line !== '');
    assert.ok(lines.every((line) => line.startsWith('{')), 'every line is a JSON object: no comments, no blank lines');
    assert.ok(parts.map((p) => p.message.content).join('').trim().length > 0, 'the answer came after the wait');
    assert.equal(parts.at(-1).done, true);
    assert.equal(parts.at(-1).done_reason, 'stop');
  });
});
