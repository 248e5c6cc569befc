// Failures after admission, as each SDK sees them: a backend that fails in the middle of every answer (all four
// client/backend pairs), a request that waits past its deadline, and a model whose only backend is down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { APIError, InternalServerError } from 'openai';
import { Ollama } from 'ollama';
import { Bed, header, OLLAMA_MODEL, OPENAI_MODEL, freePort } from './harness.js';

const messages = [{ role: 'user', content: 'Why is the sky blue?' }];
const SLOW_MODEL = 'slow:1b';
const DEAD_MODEL = 'dead:1b';

let failing;
let troubled;
const running = new AbortController();

before(async () => {
  [failing, troubled] = await Promise.all([
    Bed.start(async (bed) => {
      // One simulator speaks both protocols: one backend of each kind in front of it.
      const sim = await bed.simulator('failing simulator', [OLLAMA_MODEL, OPENAI_MODEL], { flags: ['--fail-mid-stream', '1'] });
      const gateway = await bed.gateway('gateway before a failing backend', [
        { name: 'ollama-gpu', url: sim.url, protocol: 'ollama', models: [OLLAMA_MODEL] },
        { name: 'vllm-gpu', url: sim.url, protocol: 'openai', models: [OPENAI_MODEL] },
      ], { 'Health:FailuresBeforeUnhealthy': 1000, 'Queue:MaxDispatchAttempts': 1 });
      bed.url = gateway.url;
    }),
    Bed.start(async (bed) => {
      const sim = await bed.simulator('slow simulator', [SLOW_MODEL], { parallel: 1, ttftMs: 10_000 });
      const gateway = await bed.gateway('gateway with a short deadline and a dead backend', [
        { name: 'slow-gpu', url: sim.url, protocol: 'ollama', slots: 1, models: [SLOW_MODEL] },
        // Nothing listens there.
        { name: 'dead-gpu', url: `http://127.0.0.1:${await freePort()}`, protocol: 'openai', models: [DEAD_MODEL] },
      ], { 'Queue:MaxWaitSeconds': 0.5, 'Queue:MaxDispatchAttempts': 1, 'Health:FailuresBeforeUnhealthy': 1 });
      bed.url = gateway.url;
    }),
  ]);
});

after(async () => {
  running.abort();
  await Promise.all([failing?.stop(), troubled?.stop()]);
});

const openai = (bed) => new OpenAI({ baseURL: `${bed.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 20_000 });

for (const model of [OLLAMA_MODEL, OPENAI_MODEL]) {
  describe(`a backend failing mid-answer for ${model}`, () => {
    test('openai client: the stream delivers content, then its iteration throws the error', async () => {
      const stream = await openai(failing).chat.completions.create({ model, messages, stream: true });
      const texts = [];
      await assert.rejects(async () => {
        for await (const chunk of stream) texts.push(chunk.choices[0]?.delta?.content ?? '');
      }, (error) => {
        assert.ok(error instanceof APIError, `${error?.constructor?.name}: ${error?.message}`);
        assert.match(error.message, /simulated failure/);
        return true;
      });
      assert.ok(texts.join('').length > 0, 'some content came before the error');
    });

    test('openai client: without streaming it is a server error', async () => {
      await assert.rejects(openai(failing).chat.completions.create({ model, messages }), (error) => {
        assert.ok(error instanceof InternalServerError, `${error?.constructor?.name}: ${error?.message}`);
        assert.ok(error.status >= 500, `status ${error.status}`);
        assert.equal(error.type, 'api_error');
        return true;
      });
    });

    test('ollama client: the stream delivers parts, then its iteration throws the error', async () => {
      const stream = await new Ollama({ host: failing.url }).chat({ model, messages, stream: true });
      const texts = [];
      await assert.rejects(async () => {
        for await (const part of stream) texts.push(part.message.content);
      }, (error) => {
        assert.match(error.message, /simulated failure/);
        return true;
      });
      assert.ok(texts.join('').length > 0, 'some content came before the error');
    });

    test('ollama client: without streaming it is a ResponseError with a server status', async () => {
      await assert.rejects(new Ollama({ host: failing.url }).generate({ model, prompt: 'hi' }), (error) => {
        assert.equal(error.name, 'ResponseError', `${error?.name}: ${error?.message}`);
        assert.ok(error.status_code >= 500, `status ${error.status_code}`);
        assert.match(error.message, /simulated failure/);
        return true;
      });
    });
  });
}

describe('a request that waits past its deadline', { concurrency: true }, () => {
  before(async () => {
    // Takes the only slot for 10 s; every later request for the model waits and runs out of time.
    await openai(troubled).chat.completions.create({ model: SLOW_MODEL, messages, stream: true }, { signal: running.signal });
  });

  test('openai client: without streaming it is a 503 with code timeout', async () => {
    await assert.rejects(openai(troubled).chat.completions.create({ model: SLOW_MODEL, messages }), (error) => {
      assert.ok(error instanceof InternalServerError, `${error?.constructor?.name}: ${error?.message}`);
      assert.equal(error.status, 503);
      assert.equal(error.code, 'timeout');
      // When to try again comes from the queue's estimate, never from a guess.
      assert.ok(Number(header(error.headers, 'retry-after')) >= 1, `retry-after ${header(error.headers, 'retry-after')}`);
      assert.ok(Number(header(error.headers, 'retry-after-ms')) >= 1000, `retry-after-ms ${header(error.headers, 'retry-after-ms')}`);
      return true;
    });
  });

  test('openai client: a stream (headers already sent) ends with the error, no content', async () => {
    const stream = await openai(troubled).chat.completions.create({ model: SLOW_MODEL, messages, stream: true });
    const chunks = [];
    await assert.rejects(async () => {
      for await (const chunk of stream) chunks.push(chunk);
    }, (error) => {
      assert.ok(error instanceof APIError, `${error?.constructor?.name}: ${error?.message}`);
      assert.equal(error.error?.code ?? error.code, 'timeout');
      return true;
    });
    assert.deepEqual(chunks, []);
  });

  test('ollama client: without streaming it is a ResponseError 503', async () => {
    await assert.rejects(new Ollama({ host: troubled.url }).chat({ model: SLOW_MODEL, messages }), (error) => {
      assert.equal(error.name, 'ResponseError', `${error?.name}: ${error?.message}`);
      assert.equal(error.status_code, 503);
      assert.match(error.message, /slot/);
      return true;
    });
  });

  test('ollama client: a stream (headers already sent) ends with the error line', async () => {
    const stream = await new Ollama({ host: troubled.url }).generate({ model: SLOW_MODEL, prompt: 'hi', stream: true });
    const parts = [];
    await assert.rejects(async () => {
      for await (const part of stream) parts.push(part);
    }, /slot/);
    assert.deepEqual(parts, []);
  });
});

describe('a model whose only backend is down', () => {
  test('the first request fails on the backend, then the model is refused with 503 and leaves the model lists', async () => {
    const client = openai(troubled);
    // The first call finds the connection refused (unless a health probe already did); either way a server error.
    await assert.rejects(client.chat.completions.create({ model: DEAD_MODEL, messages }), (error) => {
      assert.ok(error instanceof InternalServerError, `${error?.constructor?.name}: ${error?.message}`);
      return true;
    });
    await assert.rejects(client.chat.completions.create({ model: DEAD_MODEL, messages }), (error) => {
      assert.ok(error instanceof InternalServerError, `${error?.constructor?.name}: ${error?.message}`);
      assert.equal(error.status, 503);
      assert.equal(error.code, 'no_healthy_backend');
      return true;
    });
    await assert.rejects(new Ollama({ host: troubled.url }).chat({ model: DEAD_MODEL, messages }), (error) => {
      assert.equal(error.name, 'ResponseError', `${error?.name}: ${error?.message}`);
      assert.equal(error.status_code, 503);
      return true;
    });

    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.ok(!ids.includes(DEAD_MODEL), `${ids} lacks ${DEAD_MODEL}`);
    assert.ok(ids.includes(SLOW_MODEL), `${ids} has ${SLOW_MODEL}`);
    const { models } = await new Ollama({ host: troubled.url }).list();
    assert.ok(!models.some((m) => m.name === DEAD_MODEL));
  });
});
