// The official `ollama` npm package (ollama-js) against Anteroom's /api, for both backend protocols:
// OLLAMA_MODEL is served by an Ollama-protocol backend (Anteroom relays the backend's bytes), OPENAI_MODEL by an
// OpenAI-protocol backend (Anteroom translates).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import { OLLAMA_MODEL, OPENAI_MODEL, startTestBed } from './harness.js';

const messages = [{ role: 'user', content: 'Why is the sky blue?' }];

let bed;
let ollama;

before(async () => {
  bed = await startTestBed();
  ollama = new Ollama({ host: bed.url });
});

after(async () => {
  ollama?.abort();
  await bed?.stop();
});

/** The fields of Ollama's final object: counts, and durations in nanoseconds. */
function assertFinal(part, model, doneReason = 'stop') {
  assert.equal(part.model, model);
  assert.equal(part.done, true);
  assert.equal(part.done_reason, doneReason);
  assert.ok(!Number.isNaN(Date.parse(part.created_at)), `created_at ${part.created_at} is a date`);
  assert.ok(Number.isInteger(part.eval_count) && part.eval_count > 0, `eval_count ${part.eval_count}`);
  assert.ok(Number.isInteger(part.prompt_eval_count) && part.prompt_eval_count > 0, `prompt_eval_count ${part.prompt_eval_count}`);
  assert.ok(Number.isInteger(part.total_duration) && part.total_duration > 0, `total_duration ${part.total_duration}`);
  assert.ok(Number.isInteger(part.eval_duration) && part.eval_duration >= 0, `eval_duration ${part.eval_duration}`);
}

function assertNotFound(error, model) {
  assert.equal(error.name, 'ResponseError', `${error?.name}: ${error?.message}`);
  assert.equal(error.status_code, 404);
  assert.equal(error.message, `model '${model}' not found`);
  assert.equal(error.error, `model '${model}' not found`);
  return true;
}

for (const [model, backend] of [[OLLAMA_MODEL, 'an Ollama backend (relayed)'], [OPENAI_MODEL, 'an OpenAI backend (translated)']]) {
  describe(`ollama client -> ${model} on ${backend}`, () => {
    test('chat without streaming answers one message with counts and durations', async () => {
      const response = await ollama.chat({ model, messages, stream: false });
      assert.equal(response.message.role, 'assistant');
      assert.equal(typeof response.message.content, 'string');
      assert.ok(response.message.content.trim().length > 0, 'content is not empty');
      assertFinal(response, model);
    });

    test('chat streams parts through the async iterator, ending with done:true', async () => {
      const stream = await ollama.chat({ model, messages, stream: true });
      const parts = [];
      for await (const part of stream) parts.push(part);

      assert.ok(parts.length >= 2, `${parts.length} parts`);
      const last = parts.at(-1);
      assertFinal(last, model);
      assert.ok(parts.slice(0, -1).every((p) => p.done === false), 'only the last part is done');
      assert.ok(parts.every((p) => p.model === model && p.message?.role === 'assistant'));
      const text = parts.map((p) => p.message.content).join('');
      assert.ok(text.trim().length > 0, 'streamed content is not empty');
      assert.equal(last.eval_count, parts.filter((p) => !p.done && p.message.content !== '').length,
        'eval_count counts the streamed tokens');
    });

    test('options.num_predict stops the answer with done_reason length', async () => {
      const response = await ollama.chat({ model, messages, stream: false, options: { num_predict: 2 } });
      assertFinal(response, model, 'length');
      assert.equal(response.eval_count, 2);

      const stream = await ollama.generate({ model, prompt: 'Count to ten', stream: true, options: { num_predict: 3 } });
      let last;
      for await (const part of stream) last = part;
      assertFinal(last, model, 'length');
      assert.equal(last.eval_count, 3);
    });

    test('generate without streaming answers one response', async () => {
      const response = await ollama.generate({ model, prompt: 'Once upon a time' });
      assert.equal(typeof response.response, 'string');
      assert.ok(response.response.trim().length > 0, 'response is not empty');
      assertFinal(response, model);
      assert.ok(Array.isArray(response.context), 'generate adds context');
    });

    test('generate streams response parts, ending with done:true', async () => {
      const stream = await ollama.generate({ model, prompt: 'Once upon a time', system: 'Be brief.', stream: true });
      const parts = [];
      for await (const part of stream) parts.push(part);
      assert.ok(parts.length >= 2, `${parts.length} parts`);
      assertFinal(parts.at(-1), model);
      assert.ok(parts.slice(0, -1).every((p) => p.done === false));
      const text = parts.map((p) => p.response).join('');
      assert.ok(text.trim().length > 0, 'streamed response is not empty');
    });

    test('embed returns one numeric vector per input', async () => {
      const response = await ollama.embed({ model, input: ['first text', 'second text'] });
      assert.equal(response.model, model);
      assert.equal(response.embeddings.length, 2);
      for (const vector of response.embeddings) {
        assert.ok(vector.length > 0);
        assert.ok(vector.every((x) => typeof x === 'number' && Number.isFinite(x)));
      }
      assert.equal(response.embeddings[0].length, response.embeddings[1].length);

      const single = await ollama.embed({ model, input: 'first text' });
      assert.equal(single.embeddings.length, 1);
      assert.deepEqual(single.embeddings[0], response.embeddings[0], 'the same text embeds the same');
    });

    test('embeddings (legacy) returns one numeric vector', async () => {
      const response = await ollama.embeddings({ model, prompt: 'first text' });
      assert.ok(response.embedding.length > 0);
      assert.ok(response.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
    });

    test('show describes the model', async () => {
      const response = await ollama.show({ model });
      assert.equal(typeof response.modelfile, 'string');
      assert.match(response.modelfile, new RegExp(`FROM ${model.replace('.', '\\.')}`));
      assert.equal(typeof response.template, 'string');
      assert.equal(response.details.format, 'gguf');
      assert.equal(typeof response.details.family, 'string');
    });
  });
}

describe('ollama client: server routes and errors', () => {
  test('list (GET /api/tags) contains the models of both backends', async () => {
    const { models } = await ollama.list();
    const names = models.map((m) => m.name);
    assert.ok(names.includes(OLLAMA_MODEL), `${names} has ${OLLAMA_MODEL}`);
    assert.ok(names.includes(OPENAI_MODEL), `${names} has ${OPENAI_MODEL}`);
    for (const entry of models) {
      assert.equal(entry.model, entry.name);
      assert.match(entry.digest, /^[0-9a-f]{64}$/);
      assert.ok(!Number.isNaN(Date.parse(entry.modified_at)));
      assert.equal(typeof entry.details.family, 'string');
    }
  });

  test('ps answers the list of running models (none while idle)', async () => {
    const response = await ollama.ps();
    assert.ok(Array.isArray(response.models));
    assert.deepEqual(response.models, [], 'nothing runs between tests');
  });

  test('version answers an Ollama version', async () => {
    const { version } = await ollama.version();
    assert.match(version, /^\d+\.\d+\.\d+/);
  });

  test('an unknown model is a ResponseError 404 "model \'x\' not found" for chat, generate, embed and show', async () => {
    const model = 'no-such-model';
    await assert.rejects(ollama.chat({ model, messages, stream: false }), (e) => assertNotFound(e, model));
    await assert.rejects(ollama.chat({ model, messages, stream: true }), (e) => assertNotFound(e, model));
    await assert.rejects(ollama.generate({ model, prompt: 'hi' }), (e) => assertNotFound(e, model));
    await assert.rejects(ollama.generate({ model, prompt: 'hi', stream: true }), (e) => assertNotFound(e, model));
    await assert.rejects(ollama.embed({ model, input: 'hi' }), (e) => assertNotFound(e, model));
    await assert.rejects(ollama.embeddings({ model, prompt: 'hi' }), (e) => assertNotFound(e, model));
    await assert.rejects(ollama.show({ model }), (e) => assertNotFound(e, model));
  });

  test('a bad body is a ResponseError 400 naming the field', async () => {
    await assert.rejects(ollama.chat({ model: OLLAMA_MODEL, messages: 'not an array' }), (error) => {
      assert.equal(error.name, 'ResponseError', `${error?.name}: ${error?.message}`);
      assert.equal(error.status_code, 400);
      assert.match(error.message, /messages/);
      return true;
    });
  });
});
