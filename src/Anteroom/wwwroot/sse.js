// Server-Sent Events over fetch. EventSource cannot send a Last-Event-ID of our choosing on its first request
// nor tell a refusal's JSON from a network error, so the page reads event streams itself.

/**
 * An incremental parser for the text/event-stream format: push() text as it arrives and onEvent receives
 * { event, id, data } for each complete event. Lines may end in \n, \r\n or \r, even split across chunks.
 */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.id = null;
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (let k = 0; k < this.buffer.length; k++) {
      const ch = this.buffer[k];
      if (ch !== '\n' && ch !== '\r') continue;
      // A \r at the very end may be the first half of a \r\n still to come: wait for it.
      if (ch === '\r' && k === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, k));
      if (ch === '\r' && this.buffer[k + 1] === '\n') k++;
      start = k + 1;
    }

    this.buffer = this.buffer.slice(start);
  }

  /** The stream has ended: a final \r held back by push() was a line end after all. */
  end() {
    if (this.buffer.endsWith('\r')) {
      this.line(this.buffer.slice(0, -1));
      this.buffer = '';
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length > 0) {
        this.onEvent({ event: this.event || 'message', id: this.id, data: this.data.join('\n') });
      }
      this.reset();
      return;
    }

    if (line.startsWith(':')) return; // a comment, such as the server's keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    // An event's id is its own id line only (the server gives every event one), so an event without one is
    // never mistaken for a replay of the one before.
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}

/** Reads an event-stream response to its end, calling onEvent for each event; rejects if the connection drops. */
export async function readEventStream(response, onEvent) {
  const parser = new SseParser(onEvent);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
    parser.end();
  } finally {
    reader.releaseLock();
  }
}
