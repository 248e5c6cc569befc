// One file over the usual length on purpose: the block parser, the inline parser and the renderer share one tree
// shape and one rule — model text only ever becomes text nodes — and that rule is checked by reading them together.
// A small Markdown renderer for model answers.
//
// Safety: model text never becomes markup. Parsing produces plain objects; rendering builds DOM nodes with
// createElement and text nodes only (never innerHTML), and a link gets an href only when it is an absolute
// http or https URL. Raw HTML in the text stays visible as text.
//
// Streaming: renderMarkdownInto() keeps the nodes of top-level blocks whose source has not changed since the
// last render, so re-rendering a growing answer rebuilds only its tail (and a selection in earlier blocks holds).
//
// Supported: paragraphs (single newlines are line breaks), ATX headings, emphasis, strong, strikethrough, inline
// code, fenced code blocks (an unclosed fence runs to the end, as it does while streaming), bullet and ordered
// lists (nested by indentation), block quotes, pipe tables, horizontal rules, links, <autolinks> and bare URLs.

// ---------------------------------------------------------------------------------------------------------
// Blocks

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*))?$/;
const TABLE_DELIMITER = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;

const isBlank = (line) => /^[ \t]*$/.test(line);

/**
 * Splits Markdown into top-level blocks, each with `key`: its kind and source, equal exactly when unchanged.
 * Inline text stays raw (parseInline() reads it when a block is rendered), so unchanged blocks cost little.
 */
export function parseMarkdown(text) {
  const lines = String(text).split(/\r\n|\r|\n/);
  return parseBlocks(lines).map((block) => ({
    ...block,
    key: `${block.type}\u0000${lines.slice(block.start, block.end).join('\n')}`,
  }));
}

function parseBlocks(lines) {
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i++;
      continue;
    }

    const start = i;
    let block;
    let m;
    if ((m = FENCE.exec(line)) && !(m[2][0] === '`' && m[3].includes('`'))) {
      [block, i] = fencedCode(lines, i, m);
    } else if ((m = HEADING.exec(line))) {
      const content = (m[2] ?? '').replace(/(?:^|[ \t]+)#+$/, '');
      block = { type: 'heading', level: m[1].length, text: content };
      i++;
    } else if (RULE.test(line)) {
      block = { type: 'rule' };
      i++;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      block = { type: 'quote', children: parseBlocks(inner) };
    } else if (LIST_ITEM.test(line)) {
      [block, i] = list(lines, i);
    } else if (startsTable(lines, i)) {
      [block, i] = table(lines, i);
    } else {
      [block, i] = paragraph(lines, i);
    }

    blocks.push({ ...block, start, end: i });
  }

  return blocks;
}

function fencedCode(lines, i, open) {
  const indent = open[1].length;
  const fence = open[2];
  const language = open[3].trim().split(/\s+/)[0] ?? '';
  const closing = new RegExp(`^ {0,3}${fence[0] === '`' ? '`' : '~'}{${fence.length},}[ \\t]*$`);
  const code = [];
  let closed = false;
  i++;
  while (i < lines.length) {
    if (closing.test(lines[i])) {
      closed = true;
      i++;
      break;
    }
    // Content loses at most the opening fence's indentation.
    code.push(lines[i].replace(new RegExp(`^ {0,${indent}}`), ''));
    i++;
  }

  return [{ type: 'code', language, text: code.join('\n'), closed }, i];
}

/** True when a line starts something that ends a paragraph. */
function interrupts(lines, i) {
  const line = lines[i];
  const fence = FENCE.exec(line);
  return Boolean(fence && !(fence[2][0] === '`' && fence[3].includes('`'))) ||
    HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || startsTable(lines, i) ||
    // An empty list marker ("-" alone) would turn a line of dashes' neighbour into a list: require content.
    Boolean(LIST_ITEM.exec(line)?.[4]?.trim());
}

function paragraph(lines, i) {
  const text = [lines[i].trim()];
  i++;
  while (i < lines.length && !isBlank(lines[i]) && !interrupts(lines, i)) {
    text.push(lines[i].trim());
    i++;
  }

  return [{ type: 'paragraph', text: text.join('\n') }, i];
}

function startsTable(lines, i) {
  if (i + 1 >= lines.length || !lines[i].includes('|') || !TABLE_DELIMITER.test(lines[i + 1])) {
    return false;
  }

  return splitRow(lines[i]).length === splitRow(lines[i + 1]).length;
}

/** The cells of a table row: split at pipes that are neither escaped nor inside a code span. */
function splitRow(line) {
  let row = line.trim();
  if (row.startsWith('|')) row = row.slice(1);
  if (row.endsWith('|') && !row.endsWith('\\|')) row = row.slice(0, -1);
  const cells = [];
  let cell = '';
  let code = 0; // length of the open code span's backtick run, 0 outside one
  for (let k = 0; k < row.length; k++) {
    const ch = row[k];
    if (ch === '\\' && row[k + 1] === '|') {
      cell += '|';
      k++;
    } else if (ch === '`') {
      let run = 1;
      while (row[k + run] === '`') run++;
      cell += '`'.repeat(run);
      k += run - 1;
      code = code === 0 ? run : code === run ? 0 : code;
    } else if (ch === '|' && code === 0) {
      cells.push(cell.trim());
      cell = '';
    } else {
      cell += ch;
    }
  }

  cells.push(cell.trim());
  return cells;
}

function table(lines, i) {
  const header = splitRow(lines[i]);
  const align = splitRow(lines[i + 1]).map((spec) =>
    spec.startsWith(':') && spec.endsWith(':') ? 'center' : spec.endsWith(':') ? 'right' : spec.startsWith(':') ? 'left' : null);
  i += 2;
  const rows = [];
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes('|')) {
    const cells = splitRow(lines[i]);
    rows.push(header.map((_, c) => cells[c] ?? ''));
    i++;
  }

  return [{ type: 'table', align, header, rows }, i];
}

function list(lines, i) {
  const first = LIST_ITEM.exec(lines[i]);
  const ordered = /\d/.test(first[2]);
  const items = [];
  let loose = false;
  // Whether line k is another item of this list (a different kind of marker starts a new list).
  const nextItem = (k) => {
    const m = k < lines.length && LIST_ITEM.exec(lines[k]);
    return Boolean(m) && /\d/.test(m[2]) === ordered && !RULE.test(lines[k]);
  };
  while (nextItem(i)) {
    const m = LIST_ITEM.exec(lines[i]);

    // The item's content starts after the marker and its spaces (one space if there are five or more).
    const spaces = m[3] ?? '';
    const contentIndent = m[1].length + m[2].length + (spaces.length >= 5 || !m[4] ? 1 : spaces.length);
    const body = [m[4] ?? ''];
    i++;
    let blankBefore = false;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        body.push('');
        blankBefore = true;
        i++;
        continue;
      }

      const indent = line.match(/^ */)[0].length;
      if (indent >= contentIndent) {
        body.push(line.slice(contentIndent));
      } else if (indent > m[1].length && LIST_ITEM.test(line)) {
        body.push(line.slice(indent)); // a nested list indented less than this item's text, as models often write
      } else if (!blankBefore && !LIST_ITEM.test(line) && !interrupts(lines, i)) {
        body.push(line.trim()); // a lazy continuation of the item's paragraph
      } else {
        break;
      }

      blankBefore = false;
      i++;
    }

    // Blank lines between items, or between blocks inside one, make the list loose (paragraphs get margins).
    while (body.length > 0 && body[body.length - 1] === '') {
      body.pop();
      if (nextItem(i)) loose = true;
    }

    const children = parseBlocks(body);
    if (children.length > 1 && children.some((child, k) => k > 0 && body.slice(0, child.start).at(-1) === '')) loose = true;
    items.push(children);
  }

  return [{ type: 'list', ordered, firstNumber: ordered ? parseInt(first[2], 10) : 1, loose, items }, i];
}

// ---------------------------------------------------------------------------------------------------------
// Inlines

const PUNCTUATION = /[!-/:-@[-`{-~]/;
const WORD = /[\p{L}\p{N}]/u;
const SPACE = /\s/;

/** Parses inline Markdown into nodes: text, br, code, em, strong, del and link (href already checked). */
export function parseInline(text) {
  // For each delimiter kind ("*2": strong with asterisks), the earliest position from which a search for
  // its closer failed: a later opener of that kind cannot find one either. This keeps text full of unmatched
  // asterisks linear instead of quadratic.
  const noCloser = new Map();
  const nodes = [];
  let plain = '';
  const flush = () => {
    if (plain) nodes.push({ type: 'text', text: plain });
    plain = '';
  };

  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\\' && i + 1 < text.length && PUNCTUATION.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
    } else if (ch === '\n') {
      flush();
      nodes.push({ type: 'br' });
      i++;
    } else if (ch === '`') {
      const span = codeSpan(text, i);
      if (span) {
        flush();
        nodes.push({ type: 'code', text: span.text });
        i = span.end;
      } else {
        const run = runLength(text, i, '`');
        plain += text.slice(i, i + run);
        i += run;
      }
    } else if (ch === '*' || ch === '_' || ch === '~') {
      const emphasis = emphasisAt(text, i, noCloser);
      if (emphasis) {
        flush();
        plain = emphasis.prefix;
        flush();
        nodes.push(emphasis.node);
        i = emphasis.end;
      } else {
        const run = runLength(text, i, ch);
        plain += text.slice(i, i + run);
        i += run;
      }
    } else if (ch === '[' || (ch === '!' && text[i + 1] === '[')) {
      const link = linkAt(text, ch === '!' ? i + 1 : i, ch === '!');
      if (link) {
        flush();
        nodes.push(link.node);
        i = link.end;
      } else {
        plain += ch;
        i++;
      }
    } else if (ch === '<') {
      const auto = /^<(https?:\/\/[^\s<>]+)>/i.exec(text.slice(i));
      const href = auto && safeHref(auto[1]);
      if (href) {
        flush();
        nodes.push({ type: 'link', href, children: [{ type: 'text', text: auto[1] }] });
        i += auto[0].length;
      } else {
        plain += ch;
        i++;
      }
    } else if ((ch === 'h' || ch === 'H') && (i === 0 || !WORD.test(text[i - 1])) && /^https?:\/\//i.test(text.slice(i, i + 8))) {
      const url = bareUrl(text, i);
      const href = safeHref(url);
      if (href) {
        flush();
        nodes.push({ type: 'link', href, children: [{ type: 'text', text: url }] });
        i += url.length;
      } else {
        plain += ch;
        i++;
      }
    } else {
      plain += ch;
      i++;
    }
  }

  flush();
  return nodes;
}

function runLength(text, i, ch) {
  let n = 0;
  while (text[i + n] === ch) n++;
  return n;
}

/** A code span opening at i: a backtick run closed by a run of the same length. */
function codeSpan(text, i) {
  const run = runLength(text, i, '`');
  let k = i + run;
  while (k < text.length) {
    const close = text.indexOf('`', k);
    if (close < 0) return null;
    const length = runLength(text, close, '`');
    if (length === run) {
      let content = text.slice(i + run, close).replace(/\n/g, ' ');
      if (content.length > 2 && content.startsWith(' ') && content.endsWith(' ') && content.trim()) {
        content = content.slice(1, -1);
      }
      return { text: content, end: close + run };
    }
    k = close + length;
  }

  return null;
}

/**
 * Emphasis opening at i: `*`/`_` runs (1 em, 2 strong, 3 both) or `~~` (strikethrough), closed by a run of
 * the same character that ends a word. A simplification of CommonMark's delimiter rules that behaves well on
 * the Markdown models write. Extra characters in the opening run stay literal (`prefix`).
 */
function emphasisAt(text, i, noCloser) {
  const ch = text[i];
  const run = runLength(text, i, ch);
  const before = text[i - 1] ?? ' ';
  const after = text[i + run] ?? ' ';
  if (SPACE.test(after) || (ch === '_' && WORD.test(before))) return null;

  const sizes = ch === '~' ? (run === 2 ? [2] : []) : [3, 2, 1].filter((n) => n <= run);
  for (const size of sizes) {
    const open = i + run - size;
    const kind = ch + size;
    if (open + size >= (noCloser.get(kind) ?? Infinity)) continue;
    const close = findCloser(text, open + size, ch, size);
    if (close < 0) {
      noCloser.set(kind, open + size);
      continue;
    }

    const children = parseInline(text.slice(open + size, close));
    const node = ch === '~' ? { type: 'del', children }
      : size === 3 ? { type: 'strong', children: [{ type: 'em', children }] }
        : { type: size === 2 ? 'strong' : 'em', children };
    return { prefix: text.slice(i, open), node, end: close + size };
  }

  return null;
}

/** Where a closing run for emphasis of `size` starts, skipping code spans and escapes; -1 when there is none. */
function findCloser(text, from, ch, size) {
  let k = from;
  while (k < text.length) {
    const c = text[k];
    if (c === '\\') {
      k += 2;
    } else if (c === '`') {
      const span = codeSpan(text, k);
      k = span ? span.end : k + runLength(text, k, '`');
    } else if (c === ch) {
      const run = runLength(text, k, ch);
      const before = text[k - 1];
      const after = text[k + run] ?? ' ';
      const endsWord = k > from && !SPACE.test(before) && !(ch === '_' && WORD.test(after));
      // A closer of the exact size, or a longer run that closes more than one span at once (`**a *b***`).
      if (endsWord && (run === size || (run >= 3 && size < 3))) {
        return k + run - size;
      }
      k += run;
    } else {
      k++;
    }
  }

  return -1;
}

/** `[label](url "title")` (or an image, `![alt](url)`, shown as a link to it) starting at the bracket. */
function linkAt(text, i, image) {
  if (!text.includes('](', i)) return null; // no link can start here (and text full of brackets stays fast)
  // The label: up to the matching bracket, allowing nested brackets and skipping code spans.
  let depth = 0;
  let k = i;
  for (; k < text.length; k++) {
    const c = text[k];
    if (c === '\\') k++;
    else if (c === '`') {
      const span = codeSpan(text, k);
      if (span) k = span.end - 1;
    } else if (c === '[') depth++;
    else if (c === ']' && --depth === 0) break;
  }

  if (k >= text.length || text[k + 1] !== '(') return null;
  const labelEnd = k;

  // The destination: <...> or a run without spaces and with balanced parentheses, then an optional title.
  let j = k + 2;
  while (text[j] === ' ') j++;
  let url;
  if (text[j] === '<') {
    const close = text.indexOf('>', j);
    if (close < 0) return null;
    url = text.slice(j + 1, close);
    j = close + 1;
  } else {
    let parens = 0;
    const from = j;
    for (; j < text.length; j++) {
      const c = text[j];
      if (c === '\\') j++;
      else if (c === '(') parens++;
      else if (c === ')') {
        if (parens === 0) break;
        parens--;
      } else if (SPACE.test(c)) break;
    }
    url = text.slice(from, j);
  }

  const title = /^\s+(?:"[^"]*"|'[^']*')/.exec(text.slice(j));
  if (title) j += title[0].length;
  while (text[j] === ' ') j++;
  if (text[j] !== ')') return null;

  const href = safeHref(url.replace(/\\([!-/:-@[-`{-~])/g, '$1'));
  const start = image ? i - 1 : i;
  if (!href) {
    // Not a web link (javascript:, data:, relative…): show the source as it was written.
    return { node: { type: 'text', text: text.slice(start, j + 1) }, end: j + 1 };
  }

  const label = text.slice(i + 1, labelEnd);
  const children = image ? [{ type: 'text', text: label || url }] : parseInline(label);
  return { node: { type: 'link', href, children }, end: j + 1 };
}

/** A bare URL starting at i, without trailing punctuation or an unbalanced closing parenthesis. */
function bareUrl(text, i) {
  let url = /^https?:\/\/[^\s<>]*/i.exec(text.slice(i))[0];
  for (;;) {
    const last = url.at(-1);
    if (/[.,:;!?"'*_~]/.test(last)) {
      url = url.slice(0, -1);
    } else if (last === ')' && (url.match(/\(/g) ?? []).length < (url.match(/\)/g) ?? []).length) {
      url = url.slice(0, -1);
    } else {
      return url;
    }
  }
}

/** The URL, normalised, when it is an absolute http or https URL; otherwise null. */
export function safeHref(raw) {
  try {
    const url = new URL(String(raw).trim());
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// DOM

const rendered = new WeakMap(); // container → { keys, nodes } of its last render

/** Renders Markdown into the container, rebuilding only the top-level blocks that changed since last time. */
export function renderMarkdownInto(container, text) {
  const blocks = parseMarkdown(text);
  const previous = rendered.get(container);
  let same = 0;
  if (previous && previous.nodes.every((node) => node.parentNode === container)) {
    while (same < blocks.length && same < previous.keys.length && blocks[same].key === previous.keys[same]) same++;
    for (const node of previous.nodes.slice(same)) node.remove();
  } else {
    container.replaceChildren();
  }

  const nodes = previous && same > 0 ? previous.nodes.slice(0, same) : [];
  for (const block of blocks.slice(same)) {
    const node = renderBlock(block);
    container.append(node);
    nodes.push(node);
  }

  rendered.set(container, { keys: blocks.map((block) => block.key), nodes });
}

function renderBlocks(blocks, parent, tight = false) {
  for (const block of blocks) {
    if (tight && block.type === 'paragraph') {
      appendInlines(parent, parseInline(block.text));
    } else {
      parent.append(renderBlock(block));
    }
  }
}

function renderBlock(block) {
  switch (block.type) {
    case 'heading': {
      // The page's own headings are h1 and h2; an answer's start below them.
      const heading = document.createElement(`h${Math.min(6, block.level + 2)}`);
      appendInlines(heading, parseInline(block.text));
      return heading;
    }
    case 'rule':
      return document.createElement('hr');
    case 'quote': {
      const quote = document.createElement('blockquote');
      renderBlocks(block.children, quote);
      return quote;
    }
    case 'list': {
      const list = document.createElement(block.ordered ? 'ol' : 'ul');
      if (block.ordered && block.firstNumber !== 1) list.start = block.firstNumber;
      for (const item of block.items) {
        const li = document.createElement('li');
        renderBlocks(item, li, !block.loose);
        list.append(li);
      }
      return list;
    }
    case 'table':
      return renderTable(block);
    case 'code':
      return renderCode(block);
    default: {
      const p = document.createElement('p');
      appendInlines(p, parseInline(block.text));
      return p;
    }
  }
}

function renderTable(block) {
  const wrapper = document.createElement('div');
  wrapper.className = 'table-scroll';
  const table = document.createElement('table');
  const row = (cells, tag) => {
    const tr = document.createElement('tr');
    cells.forEach((text, c) => {
      const cell = document.createElement(tag);
      if (block.align[c]) cell.style.textAlign = block.align[c];
      if (tag === 'th') cell.scope = 'col';
      appendInlines(cell, parseInline(text));
      tr.append(cell);
    });
    return tr;
  };
  const head = document.createElement('thead');
  head.append(row(block.header, 'th'));
  table.append(head);
  if (block.rows.length > 0) {
    const body = document.createElement('tbody');
    for (const cells of block.rows) body.append(row(cells, 'td'));
    table.append(body);
  }
  wrapper.append(table);
  return wrapper;
}

function renderCode(block) {
  const figure = document.createElement('div');
  figure.className = 'code-block';
  const bar = document.createElement('div');
  bar.className = 'code-bar';
  const language = document.createElement('span');
  language.className = 'code-language';
  language.textContent = block.language;
  const copy = document.createElement('button');
  copy.type = 'button';
  copy.className = 'copy';
  copy.textContent = 'Copy';
  copy.setAttribute('aria-label', block.language ? `Copy ${block.language} code` : 'Copy code');
  const pre = document.createElement('pre');
  const code = document.createElement('code');
  code.textContent = block.text;
  pre.append(code);
  // Long lines scroll; a keyboard user needs to reach the scroller to scroll it.
  pre.tabIndex = 0;
  copy.addEventListener('click', () => copyCode(copy, code));
  bar.append(language, copy);
  figure.append(bar, pre);
  return figure;
}

function appendInlines(parent, nodes, inLink = false) {
  for (const node of nodes) {
    switch (inLink && node.type === 'link' ? 'text-of-link' : node.type) {
      case 'text-of-link':
        // A link inside a link's label (a bare URL as the label) stays text: links do not nest.
        appendInlines(parent, node.children, true);
        break;
      case 'text':
        parent.append(document.createTextNode(node.text));
        break;
      case 'br':
        parent.append(document.createElement('br'));
        break;
      case 'code': {
        const code = document.createElement('code');
        code.textContent = node.text;
        parent.append(code);
        break;
      }
      case 'link': {
        const a = document.createElement('a');
        a.href = node.href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        a.title = node.href;
        appendInlines(a, node.children, true);
        parent.append(a);
        break;
      }
      default: {
        const element = document.createElement(node.type); // em, strong or del
        appendInlines(element, node.children, inLink);
        parent.append(element);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Copying code

async function copyCode(button, code) {
  const text = code.textContent;
  let copied = false;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      // Permission refused or no focus: fall through to the older way.
    }
  }

  if (!copied) copied = copyWithSelection(text, button);
  if (!copied) {
    // Nothing worked (an old or locked-down browser): select the code so the user can copy it themselves.
    const range = document.createRange();
    range.selectNodeContents(code);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  button.textContent = copied ? 'Copied' : 'Press Ctrl+C';
  clearTimeout(button.resetTimer);
  button.resetTimer = setTimeout(() => { button.textContent = 'Copy'; }, 2000);
}

/** The pre-Clipboard-API way, for pages not served over HTTPS or localhost. */
function copyWithSelection(text, returnFocusTo) {
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  returnFocusTo.focus();
  return ok;
}
