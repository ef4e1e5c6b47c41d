import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { once } from "node:events";
import {
  batchId,
  cleanEvent,
  createEmitter,
  setAttr,
  setEndpoint,
  setUser,
  UNMATCHED_ENDPOINT,
  withVigil,
} from "../index.js";
import { TestServer } from "../support/testserver.js";

let nats;
const open = []; // emitters and HTTP servers to close after each test

before(async () => {
  nats = await TestServer.start();
});

after(async () => {
  await nats?.close();
});

async function cleanup() {
  for (const c of open.splice(0).reverse()) await c();
}

function emitter(service, options = {}) {
  const e = createEmitter({ servers: nats.url, service, natsOptions: { reconnectTimeWait: 50 }, reconnectTimeWaitMs: 50, ...options });
  open.push(() => e.close({ timeoutMs: 2000 }));
  return e;
}

// serve starts an HTTP server on a random loopback port for handler wrapped
// in the middleware; it returns the base URL.
async function serve(em, handler, options) {
  const server = http.createServer(withVigil(em, handler, options));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  open.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${server.address().port}`;
}

function loginApi(req, res) {
  const path = req.url.split("?")[0];
  if (path === "/v1/auth/login") {
    setEndpoint(req, "/v1/auth/login");
    setUser(req, "alice");
    setAttr(req, "mfa", "false");
    res.writeHead(401).end();
  } else if (path.startsWith("/v1/items/")) {
    setEndpoint(req, "/v1/items/{id}");
    res.end("item");
  } else {
    res.writeHead(404).end();
  }
}

// events returns the events stored for service, after checking that every
// line passed Vigil's validator and every message carries the right
// Nats-Msg-Id.
function storedEvents(service) {
  const out = [];
  for (const m of nats.messagesFor(service)) {
    assert.deepEqual(m.rejects, [], `Vigil's validator rejected a line of message ${m.msg_id}`);
    assert.equal(m.msg_id, batchId(m.request_ids), "Nats-Msg-Id is the request id or the batch id");
    out.push(...m.lines.map((l) => JSON.parse(l)));
  }
  return out;
}

const validCount = (service) => nats.messagesFor(service).reduce((n, m) => n + m.valid + m.rejects.length, 0);

describe("middleware", { timeout: 60_000 }, () => {
  after(cleanup);

  it("emits one valid event per request", async () => {
    const em = emitter("node-mw");
    const base = await serve(em, loginApi);
    const statuses = [];
    for (const [method, path] of [["POST", "/v1/auth/login"], ["GET", "/v1/items/42"], ["GET", "/wp-login.php"]]) {
      const res = await fetch(base + path, {
        method,
        headers: { "x-forwarded-for": "203.0.113.9", "x-request-id": "chosen-by-client", "user-agent": "test-agent" },
      });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [401, 200, 404]);
    await nats.waitFor(() => validCount("node-mw") === 3, { what: "3 events" });
    const evs = storedEvents("node-mw");
    assert.deepEqual(evs.map((e) => [e.method, e.endpoint, e.status, e.path]), [
      ["POST", "/v1/auth/login", 401, "/v1/auth/login"],
      ["GET", "/v1/items/{id}", 200, "/v1/items/42"],
      ["GET", UNMATCHED_ENDPOINT, 404, "/wp-login.php"],
    ]);
    const login = evs[0];
    assert.equal(login.user, "alice");
    assert.deepEqual(login.attrs, { mfa: "false" });
    assert.equal(login.user_agent, "test-agent");
    for (const e of evs) {
      assert.equal(e.service, "node-mw");
      assert.equal(e.source_ip, "127.0.0.1", "X-Forwarded-For from an untrusted peer is ignored");
      assert.notEqual(e.request_id, "chosen-by-client", "a client does not choose its request id");
      assert.ok(e.latency_ms >= 0);
      assert.ok(Math.abs(Date.parse(e.ts) - Date.now()) < 60_000);
    }
  });

  it("believes X-Forwarded-For and X-Request-Id from trusted proxies", async () => {
    const em = emitter("node-proxy");
    const base = await serve(em, loginApi, { trustedProxies: ["127.0.0.0/8", "::1", "10.0.0.0/8"] });
    const res = await fetch(base + "/v1/auth/login", {
      method: "POST",
      headers: { "x-forwarded-for": "198.51.100.1, 203.0.113.9, 10.1.2.3", "x-request-id": "edge-123" },
    });
    await res.arrayBuffer();
    await nats.waitFor(() => validCount("node-proxy") === 1, { what: "1 event" });
    const [ev] = storedEvents("node-proxy");
    assert.equal(ev.source_ip, "203.0.113.9");
    assert.equal(ev.request_id, "edge-123");
  });
});

describe("emitter", { timeout: 60_000 }, () => {
  after(cleanup);

  it("batches events into NDJSON messages with deterministic ids", async () => {
    const em = emitter("node-batch", { maxBatch: 50, lingerMs: 50 });
    for (let i = 0; i < 500; i++) {
      assert.equal(em.emit({ request_id: `req-${i}`, method: "POST", endpoint: "/v1/auth/login", status: 401 }), true);
    }
    await nats.waitFor(() => validCount("node-batch") === 500, { what: "500 events" });
    const msgs = nats.messagesFor("node-batch");
    const evs = storedEvents("node-batch");
    assert.deepEqual(evs.map((e) => e.request_id), Array.from({ length: 500 }, (_, i) => `req-${i}`));
    assert.ok(msgs.every((m) => m.lines.length <= 50), "at most maxBatch events per message");
    assert.ok(msgs.length < 500, `batching happened (${msgs.length} messages)`);
    assert.equal(em.stats().published, 500);
  });

  it("is deduplicated by JetStream on the request id", async () => {
    const em = emitter("node-dedup", { maxBatch: 1 });
    const ev = () => ({ request_id: "same-id", method: "GET", endpoint: "/", status: 200 });
    em.emit(ev());
    await nats.waitFor(() => em.stats().published === 1, { what: "first publish" });
    em.emit(ev());
    em.emit({ ...ev(), request_id: "sentinel" });
    await nats.waitFor(() => em.stats().published === 3, { what: "acks" });
    await nats.waitFor(() => nats.messagesFor("node-dedup").some((m) => m.msg_id === "sentinel"), { what: "sentinel stored" });
    assert.deepEqual(nats.messagesFor("node-dedup").map((m) => m.msg_id), ["same-id", "sentinel"]);
  });

  it("never blocks while NATS is down, counts drops, and resumes when it returns", async () => {
    const em = emitter("node-outage", { bufferSize: 100, minBackoffMs: 20, maxBackoffMs: 200 });
    const base = await serve(em, loginApi);
    await nats.waitFor(() => em.stats().connected, { what: "emitter connected" });
    await nats.stopNats();
    await nats.waitFor(() => !em.stats().connected, { what: "emitter to see NATS gone" });
    for (let i = 0; i < 300; i++) {
      const res = await fetch(base + "/v1/auth/login", { method: "POST" });
      await res.arrayBuffer();
      assert.equal(res.status, 401);
    }
    let st = em.stats();
    assert.equal(st.emitted, 300);
    assert.equal(st.dropped.buffer_full, 200);
    assert.equal(st.buffered, 100);
    await nats.startNats();
    await nats.waitFor(() => em.stats().pending === 0, { timeoutMs: 30_000, what: "buffered events published" });
    st = em.stats();
    assert.equal(st.published, 100);
    assert.equal(st.published + st.droppedTotal, st.emitted);
    await nats.waitFor(() => validCount("node-outage") === 100, { what: "100 events stored" });
    assert.equal(storedEvents("node-outage").length, 100);
  });

  it("starts while NATS is down and publishes once it is up", async () => {
    await nats.stopNats();
    const em = emitter("node-late");
    for (let i = 0; i < 5; i++) assert.equal(em.emit({ method: "GET", endpoint: "/", status: 200 }), true);
    await nats.startNats();
    await nats.waitFor(() => em.stats().published === 5, { timeoutMs: 30_000, what: "5 events published" });
    await nats.waitFor(() => validCount("node-late") === 5, { what: "5 events stored" });
    assert.equal(storedEvents("node-late").length, 5);
  });

  it("close publishes what is buffered and counts what is left", async () => {
    const em = emitter("node-close", { lingerMs: 60_000 });
    for (let i = 0; i < 10; i++) em.emit({ method: "GET", endpoint: "/", status: 200 });
    const st = await em.close();
    assert.equal(st.published, 10);
    assert.equal(em.emit({ method: "GET", endpoint: "/", status: 200 }), false);
    assert.equal(em.stats().dropped.closed, 1);
  });
});

describe("cleanEvent", () => {
  const id = () => "generated";
  const cases = [
    {
      name: "fills defaults",
      in: { status: 200 },
      check: (e) => e.service === "svc" && e.request_id === "generated" && e.method === "GET" && e.endpoint === UNMATCHED_ENDPOINT,
    },
    {
      name: "cleans attacker-written text",
      in: { status: 200, user: "\u0000root\u0085\ud800", user_agent: "x".repeat(600), path: "/a\u0001" },
      check: (e) => e.user === "\ufffdroot\ufffd\ufffd" && e.user_agent.length === 512 && e.path === "/a\ufffd",
    },
    { name: "cuts by UTF-8 bytes", in: { status: 200, user: "é".repeat(200) }, check: (e) => Buffer.byteLength(e.user) === 256 },
    { name: "upper-cases the method", in: { status: 200, method: "patch" }, check: (e) => e.method === "PATCH" },
    { name: "odd method becomes OTHER", in: { status: 200, method: "GE T" }, check: (e) => e.method === "OTHER" },
    { name: "endpoint white space", in: { status: 200, endpoint: "v1/a b" }, check: (e) => e.endpoint === "/v1/a_b" },
    { name: "bad ip dropped", in: { status: 200, source_ip: "not-an-ip" }, check: (e) => !("source_ip" in e) },
    { name: "ip zone dropped", in: { status: 200, source_ip: "fe80::1%eth0" }, check: (e) => e.source_ip === "fe80::1" },
    { name: "bad latency dropped", in: { status: 200, latency_ms: -1 }, check: (e) => !("latency_ms" in e) },
    {
      name: "attrs cut to 32",
      in: { status: 200, attrs: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${String(i).padStart(2, "0")}`, "v"])) },
      check: (e) => Object.keys(e.attrs).length === 32 && e.attrs.k00 === "v" && !("k39" in e.attrs),
    },
    { name: "no status", in: {}, check: (e) => e === null },
    { name: "bad service", in: { status: 200, service: "Bad Service" }, check: (e) => e === null },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = cleanEvent(c.in, "svc", id);
      assert.ok(c.check(got), JSON.stringify(got));
    });
  }

  it("computes the same batch ids as the Go emitter", () => {
    assert.equal(batchId(["req-1"]), "req-1");
    assert.equal(batchId(["a", "b"]), "vigil-batch-911169ddaaf146aff539f58c26c489af");
  });
});
