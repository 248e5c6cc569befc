// The chat page's browser-free modules: the Markdown parser (what may become a link), the event-stream parser and
// the texts browser tests read. The page's files are ES modules outside any package, so they are loaded as
// data: URLs (they import nothing).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

async function load(name) {
  const source = await readFile(new URL(`../../src/Anteroom/wwwroot/${name}`, import.meta.url), 'utf8');
  return import(`data:text/javascript,${encodeURIComponent(source)}`);
}

const { parseMarkdown, parseInline, safeHref } = await load('markdown.js');
const { SseParser } = await load('sse.js');
const { queueStatus, answerStats, retryHint } = await load('format.js');

/** Every inline node in parsed Markdown, however deeply nested. */
function inlines(markdown) {
  const found = [];
  const walk = (nodes) => nodes.forEach((node) => {
    found.push(node);
    walk(node.children ?? []);
  });
  const blocks = (list) => list.forEach((block) => {
    if (block.type !== 'code' && typeof block.text === 'string') walk(parseInline(block.text));
    blocks(block.children ?? []);
    (block.items ?? []).forEach(blocks);
    [block.header ?? [], ...(block.rows ?? [])].flat().forEach((cell) => walk(parseInline(cell)));
  });
  blocks(parseMarkdown(markdown));
  return found;
}

describe('Markdown', () => {
  test('links only to absolute http and https URLs', () => {
    const links = inlines([
      '[a](https://example.com/x) [b](javascript:alert(1)) [c](data:text/html,x) [d](/relative)',
      '<http://example.org> <javascript:alert(1)> ![e](vbscript:x) https://bare.example/path.',
      '- [f](JaVaScRiPt:alert(1))', '', '| [g](file:///etc/passwd) |', '|---|',
    ].join('\n')).filter((node) => node.type === 'link');

    assert.deepEqual(links.map((link) => link.href), ['https://example.com/x', 'http://example.org/', 'https://bare.example/path']);
    assert.equal(safeHref('  HTTPS://Example.com '), 'https://example.com/');
    assert.equal(safeHref('javascript:alert(1)'), null);
  });

  test('keeps markup as text', () => {
    const text = inlines('<script>alert(1)</script> <img src=x onerror=alert(1)>')
      .filter((node) => node.type === 'text').map((node) => node.text).join('');
    assert.equal(text, '<script>alert(1)</script> <img src=x onerror=alert(1)>');
  });

  test('parses the blocks models write', () => {
    const blocks = parseMarkdown('# Title\n\nSome **bold** text\n\n- one\n  - nested\n- two\n\n3. three\n\n```js\nlet a = 1;\n```\n\n> quote\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n---');
    assert.deepEqual(blocks.map((block) => block.type), ['heading', 'paragraph', 'list', 'list', 'code', 'quote', 'table', 'rule']);
    assert.equal(blocks[2].items[0][1].type, 'list');
    assert.equal(blocks[3].firstNumber, 3);
    assert.deepEqual([blocks[4].language, blocks[4].text, blocks[4].closed], ['js', 'let a = 1;', true]);
    assert.deepEqual(blocks[6].align, ['left', 'right']);
  });

  test('an unclosed fence runs to the end, as while streaming', () => {
    const [block] = parseMarkdown('```py\nprint(1)\n');
    assert.deepEqual([block.type, block.text, block.closed], ['code', 'print(1)\n', false]);
  });

  test('emphasis needs word boundaries', () => {
    const kinds = (text) => parseInline(text).map((node) => node.type);
    assert.deepEqual(kinds('**a** and *b* and ~~c~~'), ['strong', 'text', 'em', 'text', 'del']);
    assert.deepEqual(kinds('snake_case_name 2 * 3 * 4 **open'), ['text']);
  });

  test('unchanged blocks keep their keys, so a growing answer re-renders only its tail', () => {
    const before = parseMarkdown('First paragraph.\n\nSecond');
    const after = parseMarkdown('First paragraph.\n\nSecond, longer');
    assert.equal(before[0].key, after[0].key);
    assert.notEqual(before[1].key, after[1].key);
  });

  test('stays fast on text full of unmatched delimiters', () => {
    const start = performance.now();
    parseInline('*a _b `c ['.repeat(5000));
    assert.ok(performance.now() - start < 1000);
  });
});

describe('Event streams', () => {
  test('parse events split anywhere, with any line ending', () => {
    const stream = 'event: queued\r\nid: 1\r\ndata: {"position":2}\r\n\r\n: keep-alive\n\nevent: token\nid: 2\ndata: a\ndata: b\n\nid: 3\ndata: c\r\r';
    for (const size of [1, 2, 7, stream.length]) {
      const events = [];
      const parser = new SseParser((event) => events.push(event));
      for (let i = 0; i < stream.length; i += size) parser.push(stream.slice(i, i + size));
      parser.end();
      assert.deepEqual(events, [
        { event: 'queued', id: '1', data: '{"position":2}' },
        { event: 'token', id: '2', data: 'a\nb' },
        { event: 'message', id: '3', data: 'c' },
      ]);
    }
  });
});

describe('Texts the browser tests read', () => {
  test('queue status', () => {
    assert.equal(queueStatus({ position: 2, queue_length: 3, eta_ms: 9200 }), 'In queue: position 2 of 3 · about 9 s');
    assert.equal(queueStatus({ position: 1, queue_length: 1, eta_ms: 0 }), 'In queue: position 1 of 1 · about 1 s');
  });

  test('answer statistics', () => {
    assert.equal(answerStats({ waited_ms: 1200, time_to_first_token_ms: 300, tokens_per_second: 42.2 }), 'waited 1.2 s · first token 0.3 s · 42 tok/s');
    assert.equal(answerStats({ waited_ms: 50, time_to_first_token_ms: null, tokens_per_second: null }), 'waited 0.1 s');
  });

  test('when to retry', () => {
    assert.equal(retryHint(4200), 'Try again in about 4 s.');
    assert.equal(retryHint(null), '');
  });
});
