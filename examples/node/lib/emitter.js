// The Vigil event emitter for Node.js: emit() never blocks and never throws;
// events wait in a bounded buffer and are published to JetStream in NDJSON
// batches with a deterministic Nats-Msg-Id, the same contract as the Go
// package github.com/vigil-sec/vigil/emit (see docs/emitting.md).

import { createHash, randomUUID } from "node:crypto";
import { connect } from "nats";
import { cleanEvent } from "./clean.js";

export const BATCH_ID_PREFIX = "vigil-batch-";
export const DROP_REASONS = Object.freeze(["buffer_full", "closed", "invalid", "too_large", "rejected"]);

// batchId returns the Nats-Msg-Id of a message holding events with these
// request ids, in message order: the request id for one event, else
// "vigil-batch-" and the first 16 bytes, in hex, of the SHA-256 of the ids,
// each followed by "\n".
export function batchId(requestIds) {
  if (requestIds.length === 1) return requestIds[0];
  const h = createHash("sha256");
  for (const id of requestIds) h.update(id + "\n");
  return BATCH_ID_PREFIX + h.digest("hex").slice(0, 32);
}

const DEFAULTS = Object.freeze({
  servers: "nats://127.0.0.1:4222",
  subjectPrefix: "vigil.events",
  bufferSize: 8192,
  maxBatch: 100,
  maxBatchBytes: 128 * 1024,
  maxEventBytes: 16 * 1024,
  lingerMs: 5,
  maxInflight: 64,
  ackTimeoutMs: 5000,
  minBackoffMs: 100,
  maxBackoffMs: 5000,
  reconnectTimeWaitMs: 2000,
});

// A FIFO with O(1) shift.
class Queue {
  #items = [];
  #head = 0;
  get length() {
    return this.#items.length - this.#head;
  }
  push(x) {
    this.#items.push(x);
  }
  shift() {
    const x = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return x;
  }
}

// Error codes of nats.js that a later attempt cannot fix.
const PERMANENT = new Set(["MAX_PAYLOAD_EXCEEDED", "BAD_SUBJECT", "BAD_PAYLOAD", "BAD_HEADER", "PERMISSIONS_VIOLATION"]);

function retryable(err) {
  const api = err?.api_error;
  if (api) return api.code === 503 || api.code === 408;
  return !PERMANENT.has(err?.code);
}

export class Emitter {
  #opts;
  #queue = new Queue();
  #ready = []; // built messages waiting to be sent: { subject, data, msgID, events }
  #sent = new Set(); // messages sent, waiting for their ack
  #nc = null;
  #js = null;
  #ownsConnection;
  #connected = false;
  #closing = false; // close() was called: emit() drops
  #finished = false; // close() is done: nothing is sent any more
  #closed = null; // promise of close()
  #timer = null; // linger or retry timer
  #notBefore = 0; // no sending before this time (backoff)
  #backoff = 0;
  #failing = false;
  #progress = []; // resolvers waiting for the next ack or failure
  #counters = { emitted: 0, published: 0, messages: 0, publishErrors: 0, dropped: Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) };

  // options: servers, service (default service name), connection (an open
  // NatsConnection to use instead of connecting), natsOptions, and the
  // tuning knobs of DEFAULTS; onError(err) hears about publish failures
  // (once per failing period) and connection errors.
  constructor(options = {}) {
    this.#opts = { ...DEFAULTS, onError: () => {}, ...options };
    if (this.#opts.service !== undefined && !/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(this.#opts.service)) {
      throw new Error(`vigil: service ${JSON.stringify(this.#opts.service)} must match ^[a-z0-9][a-z0-9_.-]{0,63}$`);
    }
    this.#ownsConnection = !options.connection;
    if (options.connection) {
      this.#attach(options.connection);
    } else {
      this.#connectLoop();
    }
  }

  // emit queues one event (wire-schema field names; ts may be a Date) and
  // returns at once: true if kept, false if dropped (buffer full or closed).
  emit(ev) {
    this.#counters.emitted++;
    if (this.#closing) {
      this.#counters.dropped.closed++;
      return false;
    }
    if (this.#queue.length >= this.#opts.bufferSize) {
      this.#counters.dropped.buffer_full++;
      return false;
    }
    if (ev.ts === undefined) ev.ts = new Date();
    this.#queue.push(ev);
    this.#schedule();
    return true;
  }

  // stats returns the counters; emitted = published + dropped + pending.
  stats() {
    const c = this.#counters;
    const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
    return {
      ...c,
      dropped: { ...c.dropped },
      droppedTotal: dropped,
      buffered: this.#queue.length,
      inflight: this.#sent.size + this.#ready.length,
      pending: c.emitted - c.published - dropped,
      connected: this.#connected,
    };
  }

  // close stops taking events, publishes what is buffered and waits for the
  // acks for up to timeoutMs; what is left is counted as dropped ("closed").
  // A connection the emitter opened is closed. Resolves to stats().
  close({ timeoutMs = 5000 } = {}) {
    if (this.#closed) return this.#closed;
    this.#closing = true;
    this.#closed = this.#shutdown(Date.now() + timeoutMs);
    return this.#closed;
  }

  async #connectLoop() {
    const { servers, natsOptions, reconnectTimeWaitMs } = this.#opts;
    while (!this.#finished) {
      try {
        const nc = await connect({
          name: "vigil-emit",
          maxReconnectAttempts: -1,
          reconnectTimeWait: reconnectTimeWaitMs,
          timeout: 5000, // handshake; a half-open attempt must not hold events for 20 s
          ...natsOptions,
          servers,
        });
        if (this.#finished) {
          await nc.close();
          return;
        }
        this.#attach(nc);
        return;
      } catch (err) {
        if (!this.#failing) this.#opts.onError(err); // once per failing period
        this.#failing = true;
        await this.#sleep(reconnectTimeWaitMs);
      }
    }
  }

  #sleep(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      this.#progress.push(resolve); // close() cuts the wait short
    });
  }

  #attach(nc) {
    this.#nc = nc;
    this.#js = nc.jetstream();
    this.#connected = !nc.isClosed();
    this.#watch(nc);
    this.#pump();
    this.#notify();
  }

  async #watch(nc) {
    nc.closed().then(() => {
      this.#connected = false;
      this.#notify();
    });
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        this.#connected = false;
      } else if (s.type === "reconnect") {
        this.#connected = true;
        this.#backoff = 0;
        this.#notBefore = 0;
        this.#pump();
      }
    }
  }

  // #schedule arranges a flush: at once when a batch is full, else after the
  // linger time.
  #schedule() {
    if (this.#timer !== null || !this.#connected) return;
    const delay = this.#queue.length >= this.#opts.maxBatch ? 0 : this.#opts.lingerMs;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#pump();
    }, Math.max(delay, this.#notBefore - Date.now()));
    this.#timer.unref();
  }

  // #pump builds messages from the buffer and sends them while connected,
  // outside any backoff and under the in-flight limit.
  #pump() {
    if (!this.#connected || this.#js === null) return;
    if (Date.now() < this.#notBefore) {
      this.#schedule();
      return;
    }
    while (this.#sent.size < this.#opts.maxInflight) {
      if (this.#ready.length === 0 && !this.#build()) break;
      this.#send(this.#ready.shift());
    }
  }

  // #build turns up to maxBatch buffered events into messages, one per
  // service, and reports whether it made any.
  #build() {
    const batches = new Map();
    const { maxBatch, maxEventBytes, subjectPrefix } = this.#opts;
    for (let n = 0; n < maxBatch && this.#queue.length > 0; n++) {
      const ev = cleanEvent(this.#queue.shift(), this.#opts.service, randomUUID);
      if (ev === null) {
        this.#counters.dropped.invalid++;
        continue;
      }
      const line = JSON.stringify(ev);
      const size = Buffer.byteLength(line);
      if (size > maxEventBytes) {
        this.#counters.dropped.too_large++;
        continue;
      }
      let b = batches.get(ev.service);
      if (b !== undefined && b.bytes + 1 + size > this.#opts.maxBatchBytes) {
        this.#ready.push(message(b));
        b = undefined;
      }
      if (b === undefined) {
        b = { subject: `${subjectPrefix}.${ev.service}`, lines: [], ids: [], bytes: 0 };
        batches.set(ev.service, b);
      }
      b.lines.push(line);
      b.ids.push(ev.request_id);
      b.bytes += size + 1;
    }
    for (const b of batches.values()) this.#ready.push(message(b));
    return this.#ready.length > 0;
  }

  #send(m) {
    this.#sent.add(m);
    this.#js
      .publish(m.subject, m.data, { msgID: m.msgID, timeout: this.#opts.ackTimeoutMs })
      .then(() => this.#acked(m), (err) => this.#failed(m, err));
  }

  #acked(m) {
    if (!this.#sent.delete(m)) return; // given up on at close
    this.#counters.published += m.events;
    this.#counters.messages++;
    this.#backoff = 0;
    this.#failing = false;
    this.#notify();
    this.#pump();
  }

  #failed(m, err) {
    if (!this.#sent.delete(m)) return; // given up on at close
    this.#counters.publishErrors++;
    if (!retryable(err)) {
      this.#counters.dropped.rejected += m.events;
    } else {
      this.#ready.push(m); // same bytes, same Nats-Msg-Id: JetStream stores it once
      const { minBackoffMs, maxBackoffMs } = this.#opts;
      this.#backoff = Math.min(Math.max(2 * this.#backoff, minBackoffMs), maxBackoffMs);
      this.#notBefore = Date.now() + this.#backoff;
      if (!this.#failing) this.#opts.onError(err);
      this.#failing = true;
    }
    this.#notify();
    this.#pump();
  }

  #notify() {
    const waiters = this.#progress;
    this.#progress = [];
    for (const resolve of waiters) resolve();
  }

  #waitProgress(deadline) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, Math.max(0, Math.min(deadline - Date.now(), 1000)));
      t.unref();
      this.#progress.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async #shutdown(deadline) {
    this.#notify(); // ends a connect-retry sleep
    while (this.#queue.length + this.#ready.length + this.#sent.size > 0 && Date.now() < deadline) {
      if (this.#nc?.isClosed()) break;
      this.#pump();
      await this.#waitProgress(deadline);
    }
    if (this.#timer !== null) clearTimeout(this.#timer);
    let left = this.#queue.length;
    for (const m of [...this.#ready, ...this.#sent]) left += m.events;
    this.#counters.dropped.closed += left;
    this.#ready = [];
    this.#sent.clear();
    while (this.#queue.length > 0) this.#queue.shift();
    this.#finished = true;
    if (this.#ownsConnection && this.#nc !== null && !this.#nc.isClosed()) await this.#nc.close();
    return this.stats();
  }
}

function message(b) {
  return {
    subject: b.subject,
    data: Buffer.from(b.lines.join("\n")),
    msgID: batchId(b.ids),
    events: b.lines.length,
  };
}

// createEmitter returns a started Emitter; see Emitter's constructor.
export const createEmitter = (options) => new Emitter(options);
