// The gateway's JSON API, same origin. Errors arrive as {"error": {"code", "message", "field"?, "retry_after_ms"?}}.

/** A refusal or failure from the server (status > 0), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfterMs = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

let unauthorizedHandler = () => {};

/** Called with the ApiError of every 401: in keys mode, the page then asks for a key. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/**
 * fetch() for the API: JSON in, and the Response back when it is OK; otherwise throws an ApiError carrying the
 * server's message and when to retry. A network failure throws an ApiError with status 0; an abort rethrows.
 */
export async function request(path, { method = 'GET', body, headers = {}, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: 'same-origin',
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network_error', 'Anteroom could not be reached. Check your connection.');
  }

  if (response.ok) return response;
  const error = await errorOf(response);
  if (error.status === 401) unauthorizedHandler(error);
  throw error;
}

/** request() for JSON answers: the parsed body, or null for an empty one (204). */
export async function json(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

async function errorOf(response) {
  let detail = null;
  try {
    detail = (await response.json())?.error ?? null;
  } catch {
    // Not JSON (a proxy's error page, say): described by the status below.
  }

  return new ApiError(
    response.status,
    detail?.code ?? `http_${response.status}`,
    detail?.message ?? `The server answered ${response.status} ${response.statusText}.`.replace(/ \./, '.'),
    retryAfterOf(detail, response.headers));
}

/** Milliseconds until a retry may succeed: the body's retry_after_ms, else retry-after-ms, else Retry-After. */
function retryAfterOf(detail, headers) {
  if (Number.isFinite(detail?.retry_after_ms)) return detail.retry_after_ms;
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.has('retry-after-ms') && Number.isFinite(ms)) return ms;
  const retryAfter = headers.get('Retry-After');
  if (retryAfter === null) return null;
  const seconds = Number(retryAfter);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(retryAfter); // Retry-After may also be an HTTP date
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}
