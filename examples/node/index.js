// Vigil for Node.js services: an emitter that publishes security events to
// Vigil over NATS JetStream without ever blocking a request, and HTTP
// middleware that emits one event per request. See README.md.

export { Emitter, createEmitter, batchId, BATCH_ID_PREFIX, DROP_REASONS } from "./lib/emitter.js";
export {
  vigilMiddleware,
  withVigil,
  setUser,
  setClientId,
  setEndpoint,
  setAttr,
  requestId,
  CLIENT_CLOSED,
} from "./lib/middleware.js";
export { cleanEvent, UNMATCHED_ENDPOINT } from "./lib/clean.js";
export { parseTrustedProxies } from "./lib/ip.js";
