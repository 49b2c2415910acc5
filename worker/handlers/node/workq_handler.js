'use strict';
/*
 * workq_handler.js - run workq tasks in a long-lived Node.js process.
 *
 * One file, no npm packages (Node.js 12+): copy it into your project.  It
 * speaks version 1 of the process handler protocol (docs/handler-protocol.md
 * in the workq repository) with workq-worker, which starts this program
 * (handlers kind "process") and sends it tasks on stdin; answers go to
 * stdout.  Because stdout carries the protocol, console.log and friends
 * are sent to stderr (the worker's log) once run() is called.
 *
 *   const workq = require('./workq_handler');
 *   workq.run((task) => task.payload.toString().toUpperCase());   // sync
 *   workq.run(async (task) => { await work(task); return 'done'; }); // async
 *
 * A handler returns (or resolves to) the result: a Buffer, a string,
 * undefined/null for empty, or anything JSON.stringify takes.  It throws
 * workq.Retry(text) for a failure worth retrying and workq.Fail(text) for a
 * permanent one; any other error is retried with its message.  Up to
 * max_in_flight tasks (the worker's setting) run at once; task.signal (an
 * AbortSignal where Node has one) is aborted when the task is cancelled.
 */

const PROTOCOL = 1;
const LIBRARY = 'workq_handler.js/1.0';

class Retry extends Error {}
class Fail extends Error {}

// frames beyond protocol 1's that the worker said it reads (its hello)
let workerFeatures = [];

class Task {
  constructor(f) {
    this.id = f.id;
    this.taskId = f.task_id || '';
    this.queue = f.queue || '';
    this.type = f.type || '';
    this.key = f.key || '';
    this.attempt = f.attempt || 1;
    this.maxAttempts = f.max_attempts || 1;
    this.deadlineMs = f.deadline_ms == null ? null : f.deadline_ms;
    this.headers = f.headers || {};
    this.payload = f.payload_base64 !== undefined
      ? Buffer.from(f.payload_base64, 'base64')
      : Buffer.from(f.payload || '', 'utf8');
    this.cancelled = false;
    this._abort = typeof AbortController === 'function'
      ? new AbortController() : null;
    this.signal = this._abort ? this._abort.signal : null;
  }

  // Reports how far the task is: percent 0..100 and a short message.
  // Cheap: call it as often as you like (the worker writes the latest at
  // most once a second); a no-op with a worker that does not take it.
  progress(percent, message) {
    if (!workerFeatures.includes('progress')) return;
    const f = { t: 'progress', id: this.id, percent: Math.round(percent) };
    if (message !== undefined && message !== null) f.message = String(message);
    send(f);
  }

  get text() { return this.payload.toString('utf8'); }

  json() { return JSON.parse(this.text); }
}

// Frames sent in one turn of the event loop go out in one write (the
// worker then reads many answers at once, not one per task).
let outq = [];
let flushQueued = false;

function flush(done) {
  flushQueued = false;
  const s = outq.join('');
  outq = [];
  if (done) process.stdout.write(s, done);   // after all earlier writes
  else if (s) process.stdout.write(s);
}

function send(frame) {
  outq.push(JSON.stringify(frame) + '\n');
  if (!flushQueued) {
    flushQueued = true;
    setImmediate(flush);
  }
}

function isUtf8(buf) {
  return Buffer.from(buf.toString('utf8'), 'utf8').equals(buf);
}

function answer(id, result) {
  let b;
  if (result === undefined || result === null) b = Buffer.alloc(0);
  else if (Buffer.isBuffer(result)) b = result;
  else if (result instanceof Uint8Array) b = Buffer.from(result);
  else if (typeof result === 'string') b = Buffer.from(result, 'utf8');
  else b = Buffer.from(JSON.stringify(result), 'utf8');
  if (isUtf8(b)) send({ t: 'result', id, status: 'ok', result: b.toString('utf8') });
  else send({ t: 'result', id, status: 'ok', result_base64: b.toString('base64') });
}

function failure(id, err) {
  let status = 'retry';
  if (err instanceof Fail) status = 'fail';
  const text = err && err.message ? err.message : String(err);
  if (!(err instanceof Fail) && !(err instanceof Retry) && err && err.stack) {
    process.stderr.write(err.stack + '\n');
  }
  send({ t: 'result', id, status, error: text || status });
}

/*
 * run(handler) reads frames until the worker closes stdin, runs every task
 * with handler(task) (sync or async), and exits once the running tasks
 * have answered.
 */
function run(handler) {
  // stdout is the protocol's
  for (const k of ['log', 'info', 'debug']) console[k] = console.error;
  const running = new Map();
  let hello = false;
  let ended = false;
  let buf = '';

  send({ t: 'hello', protocol: PROTOCOL, library: LIBRARY });

  function maybeExit() {
    // a pipe's writes are asynchronous on POSIX: exit once they are out
    if (ended && running.size === 0) flush(() => process.exit(0));
  }

  function onFrame(f) {
    if (!hello) {
      if (f.t !== 'hello' || f.protocol !== PROTOCOL) {
        process.stderr.write(`workq_handler: the worker speaks protocol ${f.protocol}, this library ${PROTOCOL}\n`);
        process.exit(2);
      }
      hello = true;
      workerFeatures = Array.isArray(f.features) ? f.features : [];
      return;
    }
    if (f.t === 'task') {
      const task = new Task(f);
      running.set(task.id, task);
      Promise.resolve()
        .then(() => handler(task))
        .then((res) => { if (!task.cancelled) answer(task.id, res); },
          (err) => { if (!task.cancelled) failure(task.id, err); })
        .finally(() => { running.delete(task.id); maybeExit(); });
    } else if (f.t === 'cancel') {
      const task = running.get(f.id);
      if (task) {
        task.cancelled = true;
        if (task._abort) task._abort.abort();
      }
    }
  }

  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onFrame(JSON.parse(line));
    }
  });
  process.stdin.on('end', () => { ended = true; maybeExit(); });
}

module.exports = { run, Retry, Fail, Task, PROTOCOL };
