// How times and numbers read on the page.

/** "about 9 s", "about 3 min": rounded, never "about 0 s". */
export function approximately(ms) {
  const seconds = Math.max(1, Math.round(ms / 1000));
  return seconds < 90 ? `about ${seconds} s` : `about ${Math.round(seconds / 60)} min`;
}

/** "In queue: position 2 of 3 · about 9 s" — browser tests read this exact form. */
export function queueStatus({ position, queue_length: length, eta_ms: eta }) {
  return `In queue: position ${position} of ${length} · ${approximately(eta)}`;
}

/** "1.2 s" */
export function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** "waited 1.2 s · first token 0.3 s · 42 tok/s", leaving out what was not measured. */
export function answerStats(timings) {
  const parts = [`waited ${seconds(timings.waited_ms ?? 0)}`];
  if (timings.time_to_first_token_ms != null) parts.push(`first token ${seconds(timings.time_to_first_token_ms)}`);
  if (timings.tokens_per_second != null) {
    const rate = timings.tokens_per_second;
    parts.push(`${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} tok/s`);
  }
  return parts.join(' · ');
}

/** "Try again in about 5 s." when the server said when; otherwise empty. */
export function retryHint(retryAfterMs) {
  return retryAfterMs == null ? '' : `Try again in ${approximately(retryAfterMs)}.`;
}
