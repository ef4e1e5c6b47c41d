// Cleaning of events to Vigil's wire schema v1 (docs/event-schema.json):
// attacker-written text is made valid UTF-8 without control characters and
// cut to the schema's byte limits, so that Vigil never rejects an event for
// what a client sent.

import { isIP } from "node:net";

export const LIMITS = Object.freeze({
  requestId: 128,
  endpoint: 256,
  path: 2048,
  user: 256,
  clientId: 128,
  userAgent: 512,
  attrs: 32,
  attrKey: 64,
  attrValue: 256,
});

export const UNMATCHED_ENDPOINT = "/{unmatched}";

const SERVICE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const METHOD = /^[A-Z][A-Z0-9_-]{0,31}$/;
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
const PLAIN = /^[\x20-\x7e]*$/;

export const validService = (s) => typeof s === "string" && SERVICE.test(s);
export const validRequestId = (s) => typeof s === "string" && REQUEST_ID.test(s);

function utf8Length(cp) {
  if (cp < 0x80) return 1;
  if (cp < 0x800) return 2;
  if (cp < 0x10000) return 3;
  return 4;
}

const isControl = (cp) => cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);

// rebuild maps every code point of s (lone surrogates already replaced)
// and stops before the result would pass limit bytes of UTF-8.
function rebuild(s, limit, map) {
  let out = "";
  let bytes = 0;
  for (const ch of s.toWellFormed()) {
    const mapped = map(ch, ch.codePointAt(0));
    const n = utf8Length(mapped.codePointAt(0));
    if (bytes + n > limit) break;
    out += mapped;
    bytes += n;
  }
  return out;
}

// cleanText returns s with control characters and lone surrogates replaced
// by U+FFFD and cut to at most limit bytes; undefined for a non-string or
// an empty result.
export function cleanText(s, limit) {
  if (typeof s !== "string" || s === "") return undefined;
  if (s.length <= limit && PLAIN.test(s)) return s;
  const out = rebuild(s, limit, (ch, cp) => (isControl(cp) ? "\ufffd" : ch));
  return out === "" ? undefined : out;
}

// cleanEndpoint makes a route template valid: it starts with "/", white
// space and control characters become "_", at most 256 bytes.
export function cleanEndpoint(s) {
  if (typeof s !== "string" || s === "") return UNMATCHED_ENDPOINT;
  if (!s.startsWith("/")) s = "/" + s;
  if (s.length <= LIMITS.endpoint && /^[\x21-\x7e]*$/.test(s)) return s;
  return rebuild(s, LIMITS.endpoint, (ch, cp) =>
    isControl(cp) || /\s/u.test(ch) || ch === "\ufffd" ? "_" : ch,
  );
}

// cleanMethod upper-cases a method token; one that cannot be valid becomes
// "OTHER".
export function cleanMethod(m) {
  if (typeof m !== "string" || m === "") return "GET";
  const up = m.toUpperCase();
  return METHOD.test(up) ? up : "OTHER";
}

// cleanAttrs keeps at most 32 string entries (first keys in sorted order)
// with keys of 1-64 bytes and values of at most 256 bytes.
export function cleanAttrs(attrs) {
  if (attrs === null || typeof attrs !== "object") return undefined;
  const out = {};
  let n = 0;
  for (const key of Object.keys(attrs).sort()) {
    if (n === LIMITS.attrs) break;
    const k = cleanText(key, LIMITS.attrKey);
    if (k === undefined || Object.hasOwn(out, k)) continue;
    out[k] = cleanText(String(attrs[key] ?? ""), LIMITS.attrValue) ?? "";
    n++;
  }
  return n === 0 ? undefined : out;
}

function timestamp(ts) {
  const d = ts instanceof Date ? ts : ts === undefined ? new Date() : new Date(ts);
  return Number.isNaN(d.getTime()) || d.getTime() < 0 ? new Date().toISOString() : d.toISOString();
}

// cleanEvent returns ev as a wire-schema object with its keys in schema
// order, or null when it cannot be valid (no valid service or status).
export function cleanEvent(ev, defaultService, newRequestId) {
  const service = ev.service ?? defaultService;
  const status = ev.status;
  if (!validService(service) || !Number.isInteger(status) || status < 100 || status > 599) {
    return null;
  }
  const out = {
    ts: timestamp(ev.ts),
    service,
    request_id: validRequestId(ev.request_id) ? ev.request_id : newRequestId(),
    method: cleanMethod(ev.method),
    endpoint: cleanEndpoint(ev.endpoint),
    status,
  };
  const path = cleanText(ev.path, LIMITS.path);
  if (path !== undefined) out.path = path;
  if (Number.isFinite(ev.latency_ms) && ev.latency_ms >= 0) out.latency_ms = ev.latency_ms;
  const ip = typeof ev.source_ip === "string" ? ev.source_ip.replace(/%.*$/, "") : "";
  if (isIP(ip) !== 0) out.source_ip = ip;
  for (const [key, limit] of [["user", LIMITS.user], ["client_id", LIMITS.clientId], ["user_agent", LIMITS.userAgent]]) {
    const v = cleanText(ev[key], limit);
    if (v !== undefined) out[key] = v;
  }
  const attrs = cleanAttrs(ev.attrs);
  if (attrs !== undefined) out.attrs = attrs;
  return out;
}
