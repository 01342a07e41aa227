// apiphant/client.js under Node's own test runner, against real servers of
// tests/products/proto that tests/test_jsclient.py starts: API_URL (as
// usual), CAPPED_URL (--max-in-flight 1), DEAD_URL (a port nobody listens
// on) and HELD_FILE (a path to create to end proto's held.read).
import assert from 'node:assert/strict';
import {writeFileSync} from 'node:fs';
import {test} from 'node:test';

import {
  ApiError, BadRequest, Client, Conflict, Forbidden, Invalid, MethodNotAllowed, Missing, NetworkError, NotFound,
  PayloadTooLarge, ServiceUnavailable, Timeout, TooManyRequests, Unauthorized, UnprocessableEntity,
  UnsupportedMediaType, errorOf, retryAfter,
} from '../apiphant/client.js';

const {API_URL, CAPPED_URL, DEAD_URL, HELD_FILE} = process.env;

// A fetch that records each request and its answer's status.
function recording(log) {
  return async (url, init) => {
    const entry = {url, headers: init.headers, body: init.body};
    log.push(entry);
    try {
      const response = await fetch(url, init);
      entry.status = response.status;
      return response;
    } catch (error) {
      entry.status = 0;
      throw error;
    }
  };
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('resolved instead of rejecting');
}

test('an action answers its object; nested targets and api.call too', async () => {
  const api = new Client(API_URL);
  assert.deepEqual(await api.v0.echo.read({hello: 'node', n: [1, {a: 2}]}),
    {hello: 'node', n: [1, {a: 2}], server: 'proto'});
  assert.deepEqual(await api.v0.echo.read(), {server: 'proto'});
  assert.deepEqual(await api.v0.echo.create({x: 1}), {});
  assert.deepEqual(await api.v0.a.b.c.read({outer: {inner: 7}}), {target: 'a/b/c', nested: 7});
  assert.deepEqual(await api.v1.echo.read({}), await api.call('/api/v1/echo/read', {}));
  assert.deepEqual(await new Client(`${API_URL}/`).v0.echo.read({}), {server: 'proto'});
});

test('a target is no thenable and only v<N> starts a path', async () => {
  const api = new Client(API_URL);
  assert.equal(api.v0.echo.then, undefined);
  assert.equal(api.nothing, undefined);
  assert.equal(typeof api.v12.x.read, 'function');
  assert.throws(() => new Client(API_URL, {tokn: 'x'}), {name: 'TypeError', message: /unknown option\(s\) of Client: tokn/});
  api.headers['X-Mine'] = 'mine';
  assert.deepEqual(new Client(API_URL).headers, {});
});

test('field errors reject as Missing and Invalid, with field, state and request id', async () => {
  const api = new Client(API_URL);
  const invalid = await rejection(api.v0.fields.read({id: 'seven'}, {requestId: 'node-test-1'}));
  assert.ok(invalid instanceof Invalid && invalid instanceof BadRequest && invalid instanceof ApiError);
  assert.equal(invalid.name, 'Invalid');
  assert.deepEqual([invalid.status, invalid.field, invalid.state], [400, 'id', 'invalid']);
  assert.equal(invalid.requestId, 'node-test-1');
  assert.equal(invalid.path, '/api/v0/fields/read');
  assert.match(invalid.message, /^\/api\/v0\/fields\/read: \{"field":"id","state":"invalid"/);
  const missing = await rejection(api.v0.fields.read({}));
  assert.ok(missing instanceof Missing);
  assert.deepEqual([missing.field, missing.state, missing.explain], ['id', 'missing', null]);
  const explained = await rejection(api.v0.errors.create({cls: 'BadRequest', args: ['due', 'bad', 'YYYY-MM-DD']}));
  assert.ok(explained.constructor === BadRequest);
  assert.deepEqual([explained.field, explained.state, explained.explain], ['due', 'bad', 'YYYY-MM-DD']);
  const text = await rejection(api.v0.errors.read({status: 400, error: 'plain words'}));
  assert.ok(text.constructor === BadRequest);
  assert.deepEqual([text.error, text.field], ['plain words', null]);
});

test('every status rejects as its class, with the answer\'s error', async () => {
  const api = new Client(API_URL);
  const classes = {Unauthorized, Forbidden, NotFound, Conflict, UnprocessableEntity, TooManyRequests};
  for (const [name, Class] of Object.entries(classes)) {
    const error = await rejection(api.v0.errors.create({cls: name, args: [`said ${name}`]}));
    assert.ok(error instanceof Class, `${name}: ${error}`);
    assert.deepEqual([error.name, error.status, error.error], [name, Class.status, `said ${name}`]);
  }
  const unknown = await rejection(api.v0.nothing.read({}));
  assert.ok(unknown instanceof NotFound);
  assert.equal(unknown.error, '404 Not Found');
  const crash = await rejection(api.v0.echo.update({}));
  assert.ok(crash.constructor === ApiError);
  assert.deepEqual([crash.status, crash.error], [500, '500 Internal Server Error']);
  const teapot = await rejection(api.v0.errors.read({status: 418, error: {why: 'tea'}}));
  assert.ok(teapot.constructor === ApiError);
  assert.deepEqual([teapot.status, teapot.error], [418, {why: 'tea'}]);
  const tooLarge = await rejection(api.v0.echo.read({text: 'x'.repeat(2000)}));
  assert.ok(tooLarge instanceof PayloadTooLarge);
  const method = await rejection(api.call('/api/client.js', {}));
  assert.ok(method instanceof MethodNotAllowed);
  assert.ok(errorOf(415, 'x') instanceof UnsupportedMediaType);
  assert.ok(errorOf(405, 'x') instanceof MethodNotAllowed);
});

test('the token goes in Authorization, asked again before each attempt', async () => {
  const log = [];
  let asked = 0;
  const api = new Client(API_URL, {fetch: recording(log), token: async () => `t${++asked}`, headers: {'X-Custom': 'c'}});
  const answer = await api.v0.ctx.read({marker: 1});
  assert.deepEqual([answer.custom, answer.marker], ['c', 1]);
  assert.equal(log[0].headers.Authorization, 'Bearer t1');
  assert.equal(log[0].headers['Content-Type'], 'application/json');
  await api.v0.echo.read({});
  assert.equal(log[1].headers.Authorization, 'Bearer t2');
  api.token = 'fixed';
  await api.v0.echo.read({});
  assert.equal(log[2].headers.Authorization, 'Bearer fixed');
  api.token = null;
  await api.v0.echo.read({});
  assert.equal('Authorization' in log[3].headers, false);
});

test('a safe action is tried again after a 503, when its Retry-After says', async () => {
  const log = [];
  const api = new Client(CAPPED_URL, {retries: 2});
  const watched = new Client(CAPPED_URL, {
    retries: 2,
    fetch: async (url, init) => {
      const response = await recording(log)(url, init);
      if (response.status === 503) writeFileSync(HELD_FILE, '');  // the held request ends: the next try passes
      return response;
    },
  });
  const held = api.v0.held.read({until: HELD_FILE});
  const probe = new Client(CAPPED_URL, {retries: 0});
  for (let shed = false; !shed;) {  // until held.read is in flight: the cap of one is reached
    shed = await probe.v0.echo.read({}).then(() => false, (error) => error instanceof ServiceUnavailable);
  }
  assert.deepEqual(await watched.v0.echo.read({after: 'shed'}), {after: 'shed', server: 'proto'});
  assert.deepEqual(log.map((entry) => entry.status), [503, 200]);
  assert.deepEqual(await held, {held: true});
});

test('an unsafe action is not tried again; one marked safe is', async () => {
  const log = [];
  const api = new Client(API_URL, {fetch: recording(log), retries: 1});
  const busy = {cls: 'ServiceUnavailable', args: ['busy', 1]};
  const once = await rejection(api.v0.errors.create(busy));
  assert.ok(once instanceof ServiceUnavailable);
  assert.deepEqual([once.error, once.retryAfter], ['busy', 1]);
  assert.equal(log.length, 1);
  const twice = await rejection(api.v0.errors.create(busy, {retry: true}));
  assert.ok(twice instanceof ServiceUnavailable);
  assert.equal(log.length, 3);
  const never = await rejection(new Client(API_URL, {fetch: recording(log), retries: 1, safe: ['v0/errors/create']})
    .v0.errors.create(busy, {retry: false}));
  assert.ok(never instanceof ServiceUnavailable);
  assert.equal(log.length, 4);
  const longWait = await rejection(api.v0.errors.create({cls: 'ServiceUnavailable', args: ['later', 3600]},
    {retry: true}));
  assert.equal(longWait.retryAfter, 3600);
  assert.equal(log.length, 5, 'a Retry-After past maxRetryAfter is not waited for');
});

test('no answer is a NetworkError, tried again only when safe', async () => {
  const log = [];
  const api = new Client(DEAD_URL, {fetch: recording(log), retries: 2, backoff: 5});
  const safe = await rejection(api.v0.echo.read({}));
  assert.ok(safe instanceof NetworkError && safe instanceof ApiError && !(safe instanceof Timeout));
  assert.equal(safe.status, 0);
  assert.ok(safe.cause instanceof Error);
  assert.equal(log.length, 3);
  const unsafe = await rejection(api.v0.echo.create({}));
  assert.ok(unsafe instanceof NetworkError);
  assert.equal(log.length, 4);
});

test('no answer within the timeout is a Timeout, not tried again', async () => {
  const log = [];
  const api = new Client(API_URL, {fetch: recording(log), timeout: 100});
  const error = await rejection(api.v0.slow.read({seconds: 0.5}));
  assert.ok(error instanceof Timeout && error instanceof NetworkError);
  assert.match(error.message, /no answer within 100 ms/);
  assert.equal(log.length, 1);
  assert.deepEqual(await api.v0.slow.read({seconds: 0}, {timeout: 0}).then((a) => a.slept), 0);
});

test('the caller\'s abort rejects with its own reason', async () => {
  const controller = new AbortController();
  const api = new Client(API_URL);
  const pending = api.v0.slow.read({seconds: 0.5}, {signal: controller.signal});
  controller.abort(new Error('the user left'));
  const error = await rejection(pending);
  assert.equal(error.message, 'the user left');
  assert.ok(!(error instanceof ApiError));
  const early = await rejection(api.v0.echo.read({}, {signal: AbortSignal.abort()}));
  assert.equal(early.name, 'AbortError');
});

test('what is safe to repeat', () => {
  const api = new Client(API_URL, {safe: ['search', 'v0/jobs/run']});
  for (const action of ['read', 'list', 'group', 'stats', 'sample', 'search']) {
    assert.ok(api.isSafe(`/api/v0/tasks/${action}`), action);
  }
  assert.ok(api.isSafe('/api/v0/jobs/run'));
  assert.ok(!api.isSafe('/api/v1/jobs/run'));
  for (const action of ['create', 'update', 'delete', 'run']) {
    assert.ok(!api.isSafe(`/api/v0/tasks/${action}`), action);
  }
});

test('how long to wait before trying again', () => {
  const api = new Client(API_URL, {backoff: 100, maxBackoff: 1000, maxRetryAfter: 30});
  assert.equal(api.delay(new ServiceUnavailable('busy', {retryAfter: 2}), 0), 2000);
  assert.equal(api.delay(new ServiceUnavailable('busy', {retryAfter: 31}), 0), null);
  assert.equal(api.delay(new Timeout('slow'), 0), null);
  assert.equal(api.delay(errorOf(500, 'x'), 0), null);
  assert.equal(api.delay(new TooManyRequests('slow down', {retryAfter: 1}), 0), null);
  for (const [attempt, ceiling] of [[0, 100], [1, 200], [3, 800], [9, 1000]]) {
    for (const error of [new NetworkError('down'), new ServiceUnavailable('busy')]) {
      const wait = api.delay(error, attempt);
      assert.ok(wait >= ceiling / 2 && wait <= ceiling, `${attempt}: ${wait}`);
    }
  }
});

test('Retry-After in seconds or as a date', () => {
  assert.equal(retryAfter('7'), 7);
  assert.equal(retryAfter(null), null);
  assert.equal(retryAfter('soon'), null);
  assert.equal(retryAfter('Thu, 01 Jan 1970 00:00:00 GMT'), 0);
  const later = retryAfter(new Date(Date.now() + 60000).toUTCString());
  assert.ok(later > 50 && later <= 60, `${later}`);
});
