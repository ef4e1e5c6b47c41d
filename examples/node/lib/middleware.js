// HTTP middleware that emits one Vigil event per request, for Express-style
// frameworks (req, res, next) and for plain node:http handlers.

import { randomUUID } from "node:crypto";
import { clientIp, parseTrustedProxies } from "./ip.js";
import { UNMATCHED_ENDPOINT, validRequestId } from "./clean.js";

// Status reported when the client went away before a response was sent
// (nginx's convention).
export const CLIENT_CLOSED = 499;

// Handlers record what only they know on req.vigil, through these helpers.
export function setUser(req, user) {
  if (req.vigil) req.vigil.user = user;
}
export function setClientId(req, clientId) {
  if (req.vigil) req.vigil.clientId = clientId;
}
export function setEndpoint(req, template) {
  if (req.vigil) req.vigil.endpoint = template;
}
export function setAttr(req, key, value) {
  if (req.vigil) (req.vigil.attrs ??= {})[key] = value;
}
export const requestId = (req) => req.vigil?.requestId;

// expressRoute returns the route template Express matched, if any.
function expressRoute(req) {
  const path = req.route?.path;
  return typeof path === "string" ? (req.baseUrl ?? "") + path : undefined;
}

// vigilMiddleware returns (req, res, next) middleware. Options:
//   trustedProxies: addresses/CIDRs whose X-Forwarded-For and request id
//     header are believed (default none: the TCP peer is the client);
//   requestIdHeader: header carrying a trusted proxy's request id
//     (default "x-request-id"; "" never reads one);
//   route(req), user(req), clientId(req): fallbacks when handlers did not
//     call setEndpoint/setUser/setClientId;
//   includePath: send the raw path without query (default true);
//   enrich(req, event): last change to the event before it is emitted.
export function vigilMiddleware(emitter, options = {}) {
  const trusted = options.trustedProxies?.length ? parseTrustedProxies(options.trustedProxies) : null;
  const idHeader = (options.requestIdHeader ?? "x-request-id").toLowerCase();
  const cfg = { ...options, trusted, idHeader, includePath: options.includePath ?? true };
  return function vigil(req, res, next) {
    const start = process.hrtime.bigint();
    const ts = new Date();
    const { ip, viaProxy } = clientIp(req, cfg.trusted);
    const header = viaProxy && cfg.idHeader !== "" ? req.headers[cfg.idHeader] : undefined;
    req.vigil = { requestId: validRequestId(header) ? header : randomUUID() };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      res.off("finish", finish);
      res.off("close", finish);
      emitter.emit(buildEvent(req, res, cfg, { start, ts, ip }));
    };
    res.on("finish", finish);
    res.on("close", finish);
    next();
  };
}

function buildEvent(req, res, cfg, { start, ts, ip }) {
  const v = req.vigil;
  const elapsedNs = process.hrtime.bigint() - start;
  const ev = {
    ts,
    request_id: v.requestId,
    method: req.method,
    endpoint: v.endpoint ?? cfg.route?.(req) ?? expressRoute(req) ?? UNMATCHED_ENDPOINT,
    status: res.writableFinished || res.headersSent ? res.statusCode : CLIENT_CLOSED,
    latency_ms: Number(elapsedNs / 1000n) / 1000,
    source_ip: ip,
    user: v.user ?? cfg.user?.(req),
    client_id: v.clientId ?? cfg.clientId?.(req),
    user_agent: req.headers["user-agent"],
    attrs: v.attrs,
  };
  if (cfg.includePath) ev.path = (req.originalUrl ?? req.url ?? "").split("?")[0];
  cfg.enrich?.(req, ev);
  return ev;
}

// withVigil wraps a plain node:http handler:
//   http.createServer(withVigil(emitter, handler, options))
export function withVigil(emitter, handler, options = {}) {
  const mw = vigilMiddleware(emitter, options);
  return (req, res) => mw(req, res, () => handler(req, res));
}
