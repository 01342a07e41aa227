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
      return client.call(`/api/${segments.join('/')}`, body, options);
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
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    if (token) headers.Authorization = `Bearer ${token}`;
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
    const json = (response.headers.get('Content-Type') ?? '').includes('json');
    let answer = text;
    if (json) {
      try {
        answer = JSON.parse(text);
      } catch {
        answer = text;
      }
    }
    if (response.ok) return answer;
    const error = answer !== null && typeof answer === 'object' && 'error' in answer ? answer.error
      : `${response.status} ${response.statusText}`.trim();
    throw errorOf(response.status, error, {
      path, requestId: response.headers.get('X-Request-Id'),
      retryAfter: retryAfter(response.headers.get('Retry-After')),
    });
  }
}
