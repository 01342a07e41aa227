// apiphant's JavaScript client: one ES module, no build step, no dependency,
// for browsers and Node 20+ (fetch, AbortController). The daemon serves it
// at GET /api/client.js.
//
//   import {Client, NotFound} from 'https://api.example.com/api/client.js';
//   const api = new Client('https://api.example.com', {token: 'secret'});
//   const task = await api.v0.tasks.create({title: 'x'});  // POST /api/v0/tasks/create
//
// Rules:
// 1. api.v0.a.b.c.read(body, options) posts body (an object; {} when left
//    out) as JSON to /api/v0/a/b/c/read and resolves to the answer object.
// 2. Any status but 2xx rejects with the ApiError of its class
//    (BadRequest, Missing, Invalid, Unauthorized, Forbidden, NotFound, ...,
//    ServiceUnavailable; ApiError itself for the others, 500 included). It
//    carries status, error (the answer's "error"), requestId, retryAfter and,
//    for a field error, field, state and explain. No answer at all rejects
//    with NetworkError (status 0), and no answer within the timeout with
//    Timeout, a NetworkError. The caller's own AbortSignal rejects with its
//    reason, as fetch does.
// 3. Only an action safe to repeat is tried again: read, list, group, stats,
//    sample, the names or paths in options.safe, or a call made with
//    {retry: true}. It is tried again on a NetworkError (not a Timeout: the
//    time given is spent) and on a 503, up to `retries` times: after the
//    503's Retry-After when it says one (a longer one than maxRetryAfter is
//    not waited for), else after an exponential backoff with jitter.
// 4. Each attempt is cut after `timeout` milliseconds (10 s by default; 0:
//    never). The token (a string, or a function giving one or a Promise of
//    one, asked before each attempt) goes in Authorization: Bearer.
// 5. An action named watch streams: api.v0.tasks.watch({where}, options) is
//    a Watch, the async iterator of the server-sent events of a live table
//    ({id, event, data}: create, update, delete, ready, reset), which
//    reconnects by itself and resumes after the last event id (see Watch).

export const SAFE_ACTIONS = Object.freeze(['read', 'list', 'group', 'stats', 'sample']);

const DEFAULTS = Object.freeze({
  token: null, timeout: 10000, retries: 3, backoff: 200, maxBackoff: 5000, maxRetryAfter: 30,
  safe: [], headers: {}, fetch: null,
});
const VERSION = /^v\d+$/;

export class ApiError extends Error {
  constructor(status, error = null, {requestId = null, retryAfter = null, path = null, cause} = {}) {
    const what = error === null || error === undefined ? `${status}`
      : typeof error === 'string' ? error : JSON.stringify(error);
    super(path ? `${path}: ${what}` : what, cause === undefined ? undefined : {cause});
    this.name = new.target.name;
    this.status = status;
    this.error = error;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
    this.path = path;
  }
}

class StatusError extends ApiError {
  constructor(error = null, info = {}) {
    super(new.target.status, error, info);
  }
}

export class BadRequest extends StatusError {
  static status = 400;

  constructor(error = null, info = {}) {
    super(error, info);
    const detail = error !== null && typeof error === 'object' ? error : {};
    this.field = detail.field ?? null;
    this.state = detail.state ?? null;
    this.explain = detail.explain ?? null;
  }
}

export class Missing extends BadRequest {}
export class Invalid extends BadRequest {}
export class Unauthorized extends StatusError { static status = 401; }
export class Forbidden extends StatusError { static status = 403; }
export class NotFound extends StatusError { static status = 404; }
export class MethodNotAllowed extends StatusError { static status = 405; }
export class Conflict extends StatusError { static status = 409; }
export class PayloadTooLarge extends StatusError { static status = 413; }
export class UnsupportedMediaType extends StatusError { static status = 415; }
export class UnprocessableEntity extends StatusError { static status = 422; }
export class TooManyRequests extends StatusError { static status = 429; }
export class ServiceUnavailable extends StatusError { static status = 503; }

export class NetworkError extends ApiError {
  constructor(message, info = {}) {
    super(0, message, info);
  }
}

export class Timeout extends NetworkError {}

const BY_STATUS = new Map([BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict,
  PayloadTooLarge, UnsupportedMediaType, UnprocessableEntity, TooManyRequests, ServiceUnavailable]
  .map((Class) => [Class.status, Class]));
const BY_STATE = {missing: Missing, invalid: Invalid};

/** The ApiError of an answer's status and its "error". */
export function errorOf(status, error, info = {}) {
  let Class = BY_STATUS.get(status);
  if (Class === BadRequest && error !== null && typeof error === 'object') {
    Class = BY_STATE[error.state] ?? BadRequest;
  }
  return Class === undefined ? new ApiError(status, error, info) : new Class(error, info);
}

/** Seconds from a Retry-After header (seconds or an HTTP date); null when none or unreadable. */
export function retryAfter(value) {
  if (value === null || value === undefined || value === '') return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, {once: true});
  });
}

// A path being written: api.v0.a.b reads segments, a call posts to them.
function target(client, segments) {
  return new Proxy(() => {}, {
    get(_, name) {
      // `then` undefined: awaiting a target is not a call.
      if (typeof name !== 'string' || name === 'then') return undefined;
      return target(client, [...segments, name]);
    },
    apply(_, self, [body, options]) {
      const path = `/api/${segments.join('/')}`;
      return segments.at(-1) === 'watch' ? client.watch(path, body, options) : client.call(path, body, options);
    },
  });
}

export class Client {
  /**
   * baseUrl: where the API is ('' or left out: this page's origin).
   * options: token, timeout (ms), retries, backoff and maxBackoff (ms),
   * maxRetryAfter (s), safe (more action names, or paths like
   * 'v0/tasks/search', safe to repeat), headers (sent with every call),
   * fetch (instead of the global one).
   */
  constructor(baseUrl = '', options = {}) {
    const unknown = Object.keys(options).filter((name) => !(name in DEFAULTS));
    if (unknown.length) throw new TypeError(`unknown option(s) of Client: ${unknown.join(', ')}`);
    Object.assign(this, DEFAULTS, options);
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.safe = new Set([...SAFE_ACTIONS, ...this.safe]);
    this.headers = {...this.headers};  // this client's own, to change at will
    // api.v0 (any v<N> the client does not have) starts a path.
    return new Proxy(this, {
      get(client, name, receiver) {
        if (typeof name === 'string' && VERSION.test(name) && !(name in client)) return target(client, [name]);
        return Reflect.get(client, name, receiver);
      },
    });
  }

  /** Whether the action at path (/api/v0/tasks/read) is safe to repeat. */
  isSafe(path) {
    const route = path.replace(/^\/api\//, '');
    return this.safe.has(route.slice(route.lastIndexOf('/') + 1)) || this.safe.has(route);
  }

  /**
   * POST body to path; the answer object. options: retry (true: safe to
   * repeat; false: never repeated), timeout (ms), signal (an AbortSignal),
   * requestId (sent as X-Request-Id, the same on each attempt), headers.
   */
  async call(path, body = {}, options = {}) {
    const safe = options.retry ?? this.isSafe(path);
    const payload = JSON.stringify(body ?? {});
    for (let attempt = 0; ; attempt += 1) {
      let failure;
      try {
        return await this.attempt(path, payload, options);
      } catch (error) {
        failure = error;
      }
      const wait = safe && attempt < this.retries ? this.delay(failure, attempt) : null;
      if (wait === null) throw failure;
      await sleep(wait, options.signal);
    }
  }

  /** Milliseconds to wait before trying again after error, or null: no second try. */
  delay(error, attempt) {
    if (error instanceof ServiceUnavailable && error.retryAfter !== null) {
      return error.retryAfter <= this.maxRetryAfter ? error.retryAfter * 1000 : null;
    }
    if (!(error instanceof ServiceUnavailable) && (!(error instanceof NetworkError) || error instanceof Timeout)) {
      return null;
    }
    const ceiling = Math.min(this.maxBackoff, this.backoff * 2 ** attempt);
    return ceiling / 2 + Math.random() * ceiling / 2;
  }

  /** One request: the answer object, or the ApiError it gets. */
  async attempt(path, payload, options) {
    const headers = {...this.headers, ...options.headers, 'Content-Type': 'application/json'};
    const authorization = await this.authorization();
    if (authorization) headers.Authorization = authorization;
    if (options.requestId) headers['X-Request-Id'] = options.requestId;
    const timeout = options.timeout ?? this.timeout;
    const signal = options.signal;
    const controller = new AbortController();
    let timedOut = false;
    const timer = timeout > 0 ? setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeout) : null;
    const onAbort = () => controller.abort(signal.reason);
    if (signal?.aborted) onAbort();
    signal?.addEventListener('abort', onAbort, {once: true});
    let response;
    let text;
    try {
      const fetch = this.fetch ?? globalThis.fetch;
      response = await fetch(this.baseUrl + path, {method: 'POST', headers, body: payload, signal: controller.signal});
      text = await response.text();
    } catch (error) {
      if (timedOut) throw new Timeout(`no answer within ${timeout} ms`, {path, cause: error});
      if (signal?.aborted) throw signal.reason ?? error;
      throw new NetworkError(`no answer: ${error.message}`, {path, cause: error});
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    const answer = decoded(response, text);
    if (response.ok) return answer;
    throw failureOf(response, answer, path);
  }

  /**
   * The Watch of the watch action at path (/api/v0/tasks/watch) with body
   * ({where}); nothing is sent before it is iterated. options: lastEventId,
   * idleTimeout (ms), signal (an AbortSignal: its abort ends the watch),
   * headers.
   */
  watch(path, body = {}, options = {}) {
    return new Watch(this, path, body, options);
  }

  /** The Authorization header of the next request, or null: the token is asked each time. */
  async authorization() {
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    return token ? `Bearer ${token}` : null;
  }
}

function decoded(response, text) {
  if (!(response.headers.get('Content-Type') ?? '').includes('json')) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The ApiError of a response that is no success, its body decoded as answer. */
function failureOf(response, answer, path) {
  const error = answer !== null && typeof answer === 'object' && 'error' in answer ? answer.error
    : `${response.status} ${response.statusText}`.trim();
  return errorOf(response.status, error, {
    path, requestId: response.headers.get('X-Request-Id'),
    retryAfter: retryAfter(response.headers.get('Retry-After')),
  });
}

/**
 * The events of a watch action, across connections:
 * for await (const event of api.v0.tasks.watch({where: {done: false}})) ...
 *
 * 1. It POSTs the body with Accept: text/event-stream, the token (asked
 *    again for each connection) and Last-Event-ID once an id was seen, with
 *    fetch and a streamed body (an EventSource could send neither the token
 *    nor a POST). Leaving the loop (break, return, an exception) closes the
 *    connection; close(), return() or the abort of options.signal end the
 *    watch at once, even while it waits: the loop ends without an error.
 * 2. It yields every event with data ({id, event, data}: data parsed as
 *    JSON, else the text; ready and reset too: a reset means the changes
 *    missed are lost, list again); lastEventId follows each block of the
 *    stream, heartbeats (an id without data) included.
 * 3. When the stream ends (cleanly: the server drains or the token expired;
 *    or cut; or no byte for idleTimeout ms, 45000 by default: 3 of the
 *    server's heartbeats) it connects again after the server's retry (ms,
 *    1000 until the stream says). A connection that gets no stream is tried
 *    again, forever, after that time doubled for each failure in a row (up
 *    to the client's maxBackoff or retry, whichever is longer; with
 *    jitter), on a NetworkError, a 408, a 429 or a 5xx: after a 429's or
 *    503's Retry-After when it says one (one longer than maxRetryAfter
 *    rejects).
 * 4. A 401 when the token is a function: it is asked for a fresh token (its
 *    refresh() when it has one, else it is called again) and the connection
 *    is tried again at once; a second 401 in a row rejects. Any other
 *    status rejects as calls do (Invalid for a bad where, Forbidden, ...).
 */
export class Watch {
  constructor(client, path, body = {}, {lastEventId = null, idleTimeout = 45000, signal, headers = {}} = {}) {
    this.client = client;
    this.path = path;
    this.payload = JSON.stringify(body ?? {});
    this.lastEventId = lastEventId === null ? null : String(lastEventId);
    this.idleTimeout = idleTimeout;
    this.headers = headers;
    this.retry = 1000;
    this.closed = false;
    this.stopped = new AbortController();  // ends a wait
    this.connection = null;  // the AbortController of the open connection
    this.events = this.run();
    this.signal = signal;
    this.onAbort = () => this.close();
    if (signal?.aborted) this.close();
    signal?.addEventListener('abort', this.onAbort, {once: true});
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  next() {
    return this.events.next();
  }

  return(value) {
    this.close();
    return this.events.return(value);
  }

  /** End the watch: its connection is aborted, its loop ends. */
  close() {
    this.closed = true;
    this.stopped.abort();
    this.connection?.abort();
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  async* run() {
    let failures = 0;
    let refreshed = false;
    let wait = 0;
    while (!this.closed) {
      if (wait > 0 && !await sleep(wait, this.stopped.signal).then(() => true, () => false)) return;
      let response;
      try {
        response = await this.connect();
      } catch (error) {
        if (this.closed) return;
        if (error instanceof Unauthorized && !refreshed && typeof this.client.token === 'function') {
          if (typeof this.client.token.refresh === 'function') await this.client.token.refresh();
          refreshed = true;
          wait = 0;
          continue;
        }
        wait = this.delay(error, failures);
        if (wait === null) throw error;
        failures += 1;
        continue;
      }
      failures = 0;
      refreshed = false;
      yield* this.read(response);
      wait = this.retry;
    }
  }

  /** Milliseconds to wait before connecting again after error, the failures-th in a row from 0; null: it rejects. */
  delay(error, failures) {
    if ((error instanceof TooManyRequests || error instanceof ServiceUnavailable) && error.retryAfter !== null) {
      return error.retryAfter <= this.client.maxRetryAfter ? error.retryAfter * 1000 : null;
    }
    if (error instanceof NetworkError || error.status === 408 || error.status === 429 || error.status >= 500) {
      const ceiling = Math.min(Math.max(this.client.maxBackoff, this.retry),
        Math.max(this.retry, this.client.backoff) * 2 ** failures);
      return Math.max(this.retry, ceiling / 2 + Math.random() * ceiling / 2);
    }
    return null;
  }

  /** One connection: its response once it streams, or the ApiError it gets. */
  async connect() {
    const headers = {...this.client.headers, ...this.headers, 'Content-Type': 'application/json',
      Accept: 'text/event-stream'};
    const authorization = await this.client.authorization();
    if (authorization) headers.Authorization = authorization;
    if (this.lastEventId !== null) headers['Last-Event-ID'] = this.lastEventId;
    const connection = this.connection = new AbortController();
    const timeout = this.client.timeout;
    let timedOut = false;
    const timer = timeout > 0 ? setTimeout(() => {
      timedOut = true;
      connection.abort();
    }, timeout) : null;
    const path = this.path;
    let response;
    let answer;
    try {
      const fetch = this.client.fetch ?? globalThis.fetch;
      response = await fetch(this.client.baseUrl + path, {method: 'POST', headers, body: this.payload,
        signal: connection.signal});
      const type = response.headers.get('Content-Type') ?? '';
      if (response.status === 200 && type.startsWith('text/event-stream')) return response;
      answer = response.ok ? {error: `the answer is no event stream but ${type || 'untyped'}`}
        : decoded(response, await response.text());
    } catch (error) {
      if (timedOut) throw new Timeout(`no answer within ${timeout} ms`, {path, cause: error});
      throw new NetworkError(`no answer: ${error.message}`, {path, cause: error});
    } finally {
      clearTimeout(timer);
    }
    connection.abort();
    throw failureOf(response, answer, path);
  }

  /** The events of one connection, until it ends or breaks. */
  async* read(response) {
    const reader = response.body.getReader();
    const parser = new EventParser(this.lastEventId);
    const connection = this.connection;
    try {
      for (;;) {
        const timer = this.idleTimeout > 0 ? setTimeout(() => connection.abort(), this.idleTimeout) : null;
        let chunk;
        try {
          chunk = await reader.read();
        } catch {
          return;  // cut, silent past idleTimeout, or closed
        } finally {
          clearTimeout(timer);
        }
        if (chunk.done || this.closed) return;
        for (const block of parser.feed(chunk.value)) {
          this.lastEventId = block.lastEventId;
          if (parser.retry !== null) this.retry = parser.retry;
          if (block.event !== null) yield {id: block.lastEventId, event: block.event, data: parsed(block.data)};
        }
      }
    } finally {
      connection.abort();
    }
  }
}

function parsed(data) {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

/**
 * Server-sent events as a client reads them (text/event-stream, by the
 * rules of the HTML standard): feed(bytes) gives the blocks it ends, each
 * {lastEventId, event, data}, event and data null for a block without data
 * (a heartbeat's id: it moves lastEventId, it dispatches nothing). retry
 * holds the stream's last retry: (ms), or null.
 */
export class EventParser {
  constructor(lastEventId = null) {
    this.lastEventId = lastEventId;
    this.retry = null;
    this.decoder = new TextDecoder();  // UTF-8, U+FFFD for what is not, a first BOM dropped
    this.text = '';
    this.afterCr = false;
    this.event = '';
    this.data = [];
    this.id = lastEventId;
  }

  feed(bytes) {
    let text = this.decoder.decode(bytes, {stream: true});
    if (!text) return [];
    if (this.afterCr && text[0] === '\n') text = text.slice(1);  // the LF of a CRLF cut between two chunks
    text = this.text + text;
    this.afterCr = text.endsWith('\r');
    const blocks = [];
    let start = 0;
    for (const end of text.matchAll(/\r\n|\r|\n/g)) {
      const block = this.line(text.slice(start, end.index));
      if (block !== null) blocks.push(block);
      start = end.index + end[0].length;
    }
    this.text = text.slice(start);
    return blocks;
  }

  line(line) {
    if (line === '') return this.dispatch();
    if (line[0] === ':') return null;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (name === 'data') this.data.push(value);
    else if (name === 'event') this.event = value;
    else if (name === 'id' && !value.includes('\0')) this.id = value;
    else if (name === 'retry' && /^[0-9]+$/.test(value)) this.retry = Number(value);
    return null;
  }

  dispatch() {
    this.lastEventId = this.id;
    const block = {lastEventId: this.id, event: null, data: null};
    if (this.data.length) {
      block.event = this.event || 'message';
      block.data = this.data.join('\n');
    }
    this.event = '';
    this.data = [];
    return block;
  }
}
