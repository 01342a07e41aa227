// The watch of apiphant/client.js under Node's own test runner, against a
// real server of tests/products/liveproduct (heartbeats every 0.2 s) that
// tests/test_jsclient.py starts: LIVE_URL, TOKEN (an access token of the
// user 7) and EXPIRED (an expired one of the same user). Connections go
// through a TCP relay of this file where a test must cut, hold off or
// silence them; every wait for an event has a deadline.
import assert from 'node:assert/strict';
import net from 'node:net';
import {test} from 'node:test';

import {
  ApiError, Client, EventParser, Invalid, NetworkError, NotFound, ServiceUnavailable, Timeout, TooManyRequests,
  Unauthorized, Watch, errorOf,
} from '../apiphant/client.js';

const {LIVE_URL, TOKEN, EXPIRED} = process.env;

// A fetch that records each request and its answer's status.
function recording(log) {
  return async (url, init) => {
    const entry = {url, headers: init.headers, body: init.body};
    log.push(entry);
    const response = await fetch(url, init);
    entry.status = response.status;
    return response;
  };
}

// The next count events of watch, within ms milliseconds.
async function take(watch, count = 1, ms = 5000) {
  const events = [];
  const deadline = Date.now() + ms;
  while (events.length < count) {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${count} event(s) expected within ${ms} ms, got `
        + JSON.stringify(events))), deadline - Date.now());
    });
    try {
      const {value, done} = await Promise.race([watch.next(), late]);
      assert.ok(!done, 'the watch ended');
      events.push(value);
    } finally {
      clearTimeout(timer);
    }
  }
  return events;
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('resolved instead of rejecting');
}

const kinds = (events) => events.map((event) => [event.event, event.data.id]);

// A TCP relay to the server that can cut its connections, hold new ones off
// (closed at once) and freeze the server's bytes on the open ones.
class Relay {
  constructor(url) {
    this.port = Number(new URL(url).port);
    this.refusing = false;
    this.pairs = new Set();
  }

  async start() {
    this.server = net.createServer((client) => this.accept(client));
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  accept(client) {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.port, '127.0.0.1');
    const pair = {client, upstream, frozen: false, requested: false};
    this.pairs.add(pair);
    client.on('data', (data) => {
      pair.requested = true;
      upstream.write(data);
    });
    upstream.on('data', (data) => pair.frozen || client.write(data));
    client.on('close', () => {
      upstream.destroy();
      this.pairs.delete(pair);
    });
    upstream.on('close', () => {
      client.end();
      this.pairs.delete(pair);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  }

  cut() {
    for (const {client, upstream} of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
  }

  freeze() {
    for (const pair of this.pairs) pair.frozen = true;
  }

  // The connections that carried a request and are open (undici may open
  // one more, idle, after an abort).
  requests() {
    return [...this.pairs].filter((pair) => pair.requested).length;
  }

  async stop() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

async function eventually(check, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    assert.ok(Date.now() < deadline, `not so within ${ms} ms: ${check}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('events come in order as the where sees the rows', async () => {
  const api = new Client(LIVE_URL);
  const watch = api.v0.tasks.watch({where: {done: false}});
  try {
    const [ready] = await take(watch);
    assert.deepEqual([ready.event, ready.data], ['ready', {}]);
    const a = await api.v0.tasks.create({title: 'a'});
    const b = await api.v0.tasks.create({title: 'b', done: true});  // outside the where: no event
    await api.v0.tasks.update({id: a.id, version: a.version, done: true});  // out of it: a delete
    const b2 = await api.v0.tasks.update({id: b.id, version: b.version, done: false});  // into it: a create
    const b3 = await api.v0.tasks.update({id: b.id, version: b2.version, points: 2});
    await api.v0.tasks.delete({id: b.id});
    const events = await take(watch, 5);
    assert.deepEqual(events.map((event) => [event.event, event.data]), [
      ['create', a], ['delete', {id: a.id}], ['create', b2], ['update', b3], ['delete', {id: b.id}]]);
    const ids = [ready, ...events].map((event) => Number(event.id));
    assert.deepEqual(ids, [...new Set(ids)].sort((x, y) => x - y));
    assert.equal(watch.lastEventId, events.at(-1).id);
  } finally {
    watch.close();
  }
});

test('a watch is what an action named watch gives, and sends nothing until iterated', async () => {
  const log = [];
  const api = new Client(LIVE_URL, {fetch: recording(log), headers: {'X-Mine': 'mine'}});
  const watch = api.v0.tasks.watch({where: {done: false}});
  assert.ok(watch instanceof Watch);
  assert.deepEqual([watch.path, watch.payload, watch.lastEventId], [
    '/api/v0/tasks/watch', '{"where":{"done":false}}', null]);
  assert.equal(api.watch('/api/v0/tasks/watch', {}, {lastEventId: 7}).lastEventId, '7');
  assert.equal(log.length, 0);
  for await (const event of watch) {
    assert.equal(event.event, 'ready');
    break;
  }
  assert.ok(watch.closed);
  const {headers} = log[0];
  assert.deepEqual([headers.Accept, headers['Content-Type'], headers['X-Mine'], 'Last-Event-ID' in headers], [
    'text/event-stream', 'application/json', 'mine', false]);
});

test('break closes the connection; close(), return() and the signal end a watch that waits', async () => {
  const relay = await new Relay(LIVE_URL).start();
  try {
    const api = new Client(relay.url);
    for await (const event of api.v0.tasks.watch()) {
      assert.equal(event.event, 'ready');
      break;
    }
    await eventually(() => relay.requests() === 0);
    const controller = new AbortController();
    const stops = [(watch) => watch.close(), (watch) => watch.return(), () => controller.abort()];
    for (const stop of stops) {
      const watch = api.v0.tasks.watch({}, {signal: controller.signal});
      await take(watch);
      const pending = watch.next();  // waiting for an event that does not come
      const started = Date.now();
      stop(watch);
      assert.deepEqual(await pending, {value: undefined, done: true});
      assert.ok(Date.now() - started < 1000);
      assert.deepEqual(await watch.next(), {value: undefined, done: true});
    }
    await eventually(() => relay.requests() === 0);
    const aborted = api.v0.tasks.watch({}, {signal: AbortSignal.abort()});
    assert.deepEqual(await aborted.next(), {value: undefined, done: true});
  } finally {
    await relay.stop();
  }
});

test('a watch resumes after a cut, missing nothing and nothing twice', async () => {
  const relay = await new Relay(LIVE_URL).start();
  const log = [];
  const writer = new Client(LIVE_URL);
  const watch = new Client(relay.url, {fetch: recording(log), maxBackoff: 1000}).v0.tasks.watch();
  try {
    assert.equal((await take(watch))[0].event, 'ready');
    const one = await writer.v0.tasks.create({title: 'one'});
    const [seen] = await take(watch);
    assert.deepEqual(kinds([seen]), [['create', one.id]]);
    relay.refusing = true;
    relay.cut();
    const two = await writer.v0.tasks.create({title: 'two'});
    await writer.v0.tasks.update({id: one.id, version: one.version, points: 5});
    relay.refusing = false;
    assert.deepEqual(kinds(await take(watch, 3)), [['create', two.id], ['update', one.id], ['ready', undefined]]);
    const three = await writer.v0.tasks.create({title: 'three'});
    assert.deepEqual(kinds(await take(watch)), [['create', three.id]]);
    assert.deepEqual(log.map((entry) => entry.status), [200, 200]);
    assert.equal(log[1].headers['Last-Event-ID'], seen.id);
  } finally {
    watch.close();
    await relay.stop();
  }
});

test('a silent connection is given up after idleTimeout', async () => {
  const relay = await new Relay(LIVE_URL).start();
  const log = [];
  const writer = new Client(LIVE_URL);
  const watch = new Client(relay.url, {fetch: recording(log)}).watch('/api/v0/tasks/watch', {}, {idleTimeout: 600});
  try {
    assert.equal((await take(watch))[0].event, 'ready');
    relay.freeze();  // open, but no byte comes: no heartbeat either
    const started = Date.now();
    const one = await writer.v0.tasks.create({title: 'one'});
    assert.deepEqual(kinds(await take(watch, 2)), [['create', one.id], ['ready', undefined]]);
    assert.ok(Date.now() - started >= 600);
    assert.equal(log.length, 2);
  } finally {
    watch.close();
    await relay.stop();
  }
});

test('heartbeat ids move lastEventId and the resume starts there', async () => {
  const relay = await new Relay(LIVE_URL).start();
  const log = [];
  const writer = new Client(LIVE_URL);
  const watch = new Client(relay.url, {fetch: recording(log)}).v0.tasks.watch({where: {title: 'nobody'}});
  try {
    const [ready] = await take(watch);
    await writer.v0.tasks.create({title: 'someone'});
    await writer.v0.tasks.create({title: 'someone else'});
    const pending = watch.next();  // no event comes: a heartbeat is none
    await eventually(() => Number(watch.lastEventId) >= Number(ready.id) + 2);
    const moved = watch.lastEventId;
    relay.cut();
    const again = (await pending).value;
    assert.deepEqual([again.event, again.id], ['ready', moved]);
    assert.equal(log[1].headers['Last-Event-ID'], moved);
  } finally {
    watch.close();
    await relay.stop();
  }
});

test('an id the server cannot resume from is a reset', async () => {
  const watch = new Client(LIVE_URL).watch('/api/v0/tasks/watch', {}, {lastEventId: 10 ** 12});
  try {
    const [reset, ready] = await take(watch, 2);
    assert.deepEqual([reset.event, reset.data, ready.event], ['reset', {}, 'ready']);
    assert.equal(reset.id, ready.id);
  } finally {
    watch.close();
  }
});

test('a 401 gets a fresh token once: refresh() when the function has it, else the function again', async () => {
  let current = EXPIRED;
  let refreshed = 0;
  const token = Object.assign(() => current, {refresh: async () => {
    refreshed += 1;
    current = TOKEN;
  }});
  for (const given of [token, ((tokens) => () => tokens.shift())([EXPIRED, TOKEN])]) {
    const log = [];
    const watch = new Client(LIVE_URL, {token: given, fetch: recording(log)}).v0.notes.watch();
    try {
      assert.equal((await take(watch))[0].event, 'ready');
      assert.deepEqual(log.map((entry) => [entry.status, entry.headers.Authorization]), [
        [401, `Bearer ${EXPIRED}`], [200, `Bearer ${TOKEN}`]]);
    } finally {
      watch.close();
    }
  }
  assert.equal(refreshed, 1);
  for (const given of [() => EXPIRED, EXPIRED]) {
    const log = [];
    const error = await rejection(new Client(LIVE_URL, {token: given, fetch: recording(log)}).v0.notes.watch().next());
    assert.ok(error instanceof Unauthorized);
    assert.equal(log.length, typeof given === 'function' ? 2 : 1);
  }
});

test('a 400 or a 404 rejects without a second try', async () => {
  const log = [];
  const api = new Client(LIVE_URL, {fetch: recording(log)});
  const where = await rejection(api.v0.tasks.watch({where: {nope: 1}}).next());
  assert.ok(where instanceof Invalid);
  assert.deepEqual([where.field, where.path], ['where', '/api/v0/tasks/watch']);
  const last = await rejection(api.watch('/api/v0/tasks/watch', {}, {lastEventId: 'yesterday'}).next());
  assert.equal(last.field, 'Last-Event-ID');
  assert.ok(await rejection(api.v0.plain.watch().next()) instanceof NotFound);  // a table that is not watched
  assert.deepEqual(log.map((entry) => entry.status), [400, 400, 404]);
});

test('how long a watch waits before connecting again', () => {
  const watch = new Client(LIVE_URL, {backoff: 200, maxBackoff: 5000, maxRetryAfter: 30}).v0.tasks.watch();
  assert.equal(watch.delay(new ServiceUnavailable('busy', {retryAfter: 3}), 0), 3000);
  assert.equal(watch.delay(new TooManyRequests('slow down', {retryAfter: 60}), 0), null);
  const failures = [new TooManyRequests('slow down'), new NetworkError('down'), new Timeout('silent'),
    errorOf(502, 'x'), errorOf(408, 'x')];
  for (const failure of failures) {
    assert.equal(watch.delay(failure, 0), 1000, failure.name);
    for (const [count, ceiling] of [[1, 2000], [2, 4000], [3, 5000], [9, 5000]]) {
      const wait = watch.delay(failure, count);
      assert.ok(wait >= ceiling / 2 && wait <= ceiling, `${failure.name} ${count}: ${wait}`);
    }
  }
  for (const status of [400, 403, 404, 409]) assert.equal(watch.delay(errorOf(status, 'x'), 0), null);
  assert.equal(watch.delay(new TypeError('a bug'), 0), null);
  assert.ok(!(new TypeError('x') instanceof ApiError));
  watch.retry = 8000;  // a server's retry longer than maxBackoff is still waited
  assert.equal(watch.delay(new NetworkError('down'), 5), 8000);
});

const encoder = new TextEncoder();

function blocks(chunks, lastEventId = null) {
  const parser = new EventParser(lastEventId);
  const found = chunks.flatMap((chunk) => parser.feed(typeof chunk === 'string' ? encoder.encode(chunk) : chunk))
    .map((block) => [block.lastEventId, block.event, block.data]);
  return {found, parser};
}

test('the parser reads events, comments, ids and retry', () => {
  const {found, parser} = blocks([
    '\ufeffretry: 1000\n\n'
    + ': a comment\nid: 3\nevent: create\ndata: {"id": 1,\ndata:  "x": 2}\n\n'
    + 'data\n\n'
    + ': \nid: 5\n\n'
    + 'id\nevent: delete\ndata: 1\nunknown: field\n\n'
    + 'data: plain\n\n'
    + 'id: 9\0\ndata: x\nretry: 2s\n\n']);
  assert.deepEqual(found, [
    [null, null, null],
    ['3', 'create', '{"id": 1,\n "x": 2}'],
    ['3', 'message', ''],
    ['5', null, null],
    ['', 'delete', '1'],
    ['', 'message', 'plain'],
    ['', 'message', 'x'],
  ]);
  assert.deepEqual([parser.retry, parser.lastEventId], [1000, '']);
});

test('the parser takes any line end and bytes cut anywhere', () => {
  const stream = encoder.encode('id: 1\r\nevent: é\rdata: ü\n\r\nid: 2\r\r');
  const whole = blocks([stream]).found;
  assert.deepEqual(whole, [['1', 'é', 'ü'], ['2', null, null]]);
  for (let cut = 1; cut < stream.length; cut += 1) {
    assert.deepEqual(blocks([stream.slice(0, cut), stream.slice(cut)]).found, whole, `${cut}`);
  }
  assert.deepEqual(blocks([...stream].map((byte) => new Uint8Array([byte]))).found, whole);
});

test('the parser drops a block the stream ends in and keeps the id it started with', () => {
  const {found, parser} = blocks(['id: 4\ndata: half'], '2');
  assert.deepEqual([found, parser.lastEventId], [[], '2']);
  assert.deepEqual(blocks(['data: x\n\n'], '2').found, [['2', 'message', 'x']]);
  assert.deepEqual(blocks([new Uint8Array([...encoder.encode('data: '), 0xff, 10, 10])]).found,
    [[null, 'message', '\ufffd']]);
});
