// The official `openai` npm package against Anteroom's /v1 API, for both backend protocols:
// OLLAMA_MODEL is served by an Ollama-protocol backend (Anteroom translates), OPENAI_MODEL by an
// OpenAI-protocol backend (Anteroom relays the backend's bytes).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { BadRequestError, NotFoundError } from 'openai';
import { OLLAMA_MODEL, OPENAI_MODEL, startTestBed } from './harness.js';

const messages = [{ role: 'user', content: 'Why is the sky blue?' }];

let bed;
let client;

before(async () => {
  bed = await startTestBed();
  client = new OpenAI({ baseURL: `${bed.url}/v1`, apiKey: 'not-needed', maxRetries: 0, timeout: 20_000 });
});

after(async () => {
  await bed?.stop();
});

function assertUsage(usage) {
  assert.ok(usage, 'usage is present');
  assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0, `prompt_tokens ${usage.prompt_tokens}`);
  assert.ok(Number.isInteger(usage.completion_tokens) && usage.completion_tokens > 0, `completion_tokens ${usage.completion_tokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

for (const [model, backend] of [[OLLAMA_MODEL, 'an Ollama backend (translated)'], [OPENAI_MODEL, 'an OpenAI backend (relayed)']]) {
  describe(`openai client -> ${model} on ${backend}`, () => {
    test('chat.completions.create answers with content, finish_reason and usage', async () => {
      const completion = await client.chat.completions.create({ model, messages });
      assert.equal(completion.object, 'chat.completion');
      assert.match(completion.id, /^chatcmpl-/);
      assert.equal(completion.model, model);
      assert.equal(completion.choices.length, 1);
      const [choice] = completion.choices;
      assert.equal(choice.message.role, 'assistant');
      assert.equal(typeof choice.message.content, 'string');
      assert.ok(choice.message.content.trim().length > 0, 'content is not empty');
      assert.equal(choice.finish_reason, 'stop');
      assertUsage(completion.usage);
    });

    test('chat.completions.create streams chunks that concatenate to the answer; include_usage adds a last usage chunk', async () => {
      const stream = await client.chat.completions.create({
        model, messages, stream: true, stream_options: { include_usage: true },
      });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);

      assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
      const ids = new Set(chunks.map((c) => c.id));
      assert.equal(ids.size, 1, 'every chunk has the same id');
      assert.match([...ids][0], /^chatcmpl-/);
      for (const chunk of chunks) {
        assert.equal(chunk.object, 'chat.completion.chunk');
        assert.equal(chunk.model, model);
      }

      const last = chunks.at(-1);
      assert.deepEqual(last.choices, [], 'the usage chunk has no choices');
      assertUsage(last.usage);

      const withChoices = chunks.filter((c) => c.choices.length > 0);
      assert.equal(withChoices[0].choices[0].delta.role, 'assistant', 'the first delta names the role');
      const text = withChoices.map((c) => c.choices[0].delta.content ?? '').join('');
      assert.ok(text.trim().length > 0, 'streamed content is not empty');
      const finishes = withChoices.map((c) => c.choices[0].finish_reason).filter((r) => r !== null && r !== undefined);
      assert.deepEqual(finishes, ['stop'], 'exactly one finish_reason, on the last content chunk');
      assert.equal(withChoices.at(-1).choices[0].finish_reason, 'stop');
    });

    test('a stream without include_usage carries no usage chunk', async () => {
      const stream = await client.chat.completions.create({ model, messages, stream: true });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length > 0);
      assert.ok(chunks.every((c) => c.choices.length === 1), 'every chunk has one choice');
      assert.ok(chunks.every((c) => !c.usage), 'no usage');
      assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    });

    test('max_tokens stops the answer with finish_reason length', async () => {
      const completion = await client.chat.completions.create({ model, messages, max_tokens: 2 });
      assert.equal(completion.choices[0].finish_reason, 'length');
      assert.equal(completion.usage.completion_tokens, 2);
    });

    test('max_completion_tokens stops a stream with finish_reason length', async () => {
      const stream = await client.chat.completions.create({
        model, messages, max_completion_tokens: 2, stream: true, stream_options: { include_usage: true },
      });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      const finishes = chunks.flatMap((c) => c.choices.map((choice) => choice.finish_reason)).filter(Boolean);
      assert.deepEqual(finishes, ['length']);
      assert.equal(chunks.at(-1).usage.completion_tokens, 2);
    });

    test('completions.create (legacy) answers text', async () => {
      const completion = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 50 });
      assert.equal(completion.object, 'text_completion');
      assert.equal(completion.model, model);
      assert.equal(completion.choices.length, 1);
      assert.equal(typeof completion.choices[0].text, 'string');
      assert.ok(completion.choices[0].text.trim().length > 0, 'text is not empty');
      assert.equal(completion.choices[0].finish_reason, 'stop');
      assertUsage(completion.usage);
    });

    test('completions.create (legacy) streams text chunks', async () => {
      const stream = await client.completions.create({ model, prompt: 'Once upon a time', stream: true });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length >= 2, `${chunks.length} chunks`);
      for (const chunk of chunks) {
        assert.equal(chunk.object, 'text_completion');
        assert.equal(chunk.model, model);
      }
      const text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
      assert.ok(text.trim().length > 0, 'streamed text is not empty');
      assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
    });

    test('embeddings.create returns numeric vectors (the SDK asks for base64 and decodes it)', async () => {
      const result = await client.embeddings.create({ model, input: ['first text', 'second text'] });
      assert.equal(result.object, 'list');
      assert.equal(result.model, model);
      assert.equal(result.data.length, 2);
      result.data.forEach((item, index) => {
        assert.equal(item.object, 'embedding');
        assert.equal(item.index, index);
        assert.ok(Array.isArray(item.embedding), 'decoded into an array');
        assert.ok(item.embedding.length > 0);
        assert.ok(item.embedding.every((x) => typeof x === 'number' && Number.isFinite(x)), 'finite numbers');
      });
      assert.ok(result.usage.prompt_tokens > 0);

      // The same input as plain floats gives the same vector, up to float32 precision.
      const floats = await client.embeddings.create({ model, input: 'first text', encoding_format: 'float' });
      const plain = floats.data[0].embedding;
      assert.equal(plain.length, result.data[0].embedding.length);
      plain.forEach((x, i) => assert.ok(Math.abs(x - result.data[0].embedding[i]) <= 1e-6 * Math.max(1, Math.abs(x)), `component ${i}`));
    });

    test('models.retrieve describes the model', async () => {
      const described = await client.models.retrieve(model);
      assert.equal(described.id, model);
      assert.equal(described.object, 'model');
      assert.equal(typeof described.owned_by, 'string');
      assert.ok(Number.isInteger(described.created));
    });
  });
}

describe('openai client: listing and errors', () => {
  test('models.list contains the models of both backends', async () => {
    const ids = [];
    for await (const model of client.models.list()) {
      assert.equal(model.object, 'model');
      ids.push(model.id);
    }
    assert.ok(ids.includes(OLLAMA_MODEL), `${ids} has ${OLLAMA_MODEL}`);
    assert.ok(ids.includes(OPENAI_MODEL), `${ids} has ${OPENAI_MODEL}`);
  });

  test('an unknown model is a NotFoundError (404, model_not_found)', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages }),
      (error) => {
        assert.ok(error instanceof NotFoundError, `${error?.constructor?.name}: ${error?.message}`);
        assert.equal(error.status, 404);
        assert.equal(error.code, 'model_not_found');
        assert.match(error.message, /no-such-model/);
        return true;
      });
  });

  test('an unknown model is a NotFoundError for streams, completions, embeddings and models.retrieve too', async () => {
    const calls = [
      () => client.chat.completions.create({ model: 'no-such-model', messages, stream: true }),
      () => client.completions.create({ model: 'no-such-model', prompt: 'hi' }),
      () => client.embeddings.create({ model: 'no-such-model', input: 'hi' }),
      () => client.models.retrieve('no-such-model'),
    ];
    for (const call of calls) {
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof NotFoundError, `${error?.constructor?.name}: ${error?.message}`);
        assert.equal(error.status, 404);
        return true;
      });
    }
  });

  test('a bad body is a BadRequestError (400, invalid_request_error naming the field)', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: OPENAI_MODEL, messages: 'not an array' }),
      (error) => {
        assert.ok(error instanceof BadRequestError, `${error?.constructor?.name}: ${error?.message}`);
        assert.equal(error.status, 400);
        assert.equal(error.type, 'invalid_request_error');
        assert.equal(error.param, 'messages');
        return true;
      });
  });

  test('a missing prompt on completions is a BadRequestError', async () => {
    await assert.rejects(
      client.completions.create({ model: OLLAMA_MODEL }),
      (error) => {
        assert.ok(error instanceof BadRequestError, `${error?.constructor?.name}: ${error?.message}`);
        assert.equal(error.param, 'prompt');
        return true;
      });
  });
});
