// A small login API in plain node:http that reports every request to Vigil.
//
//   NATS_URL=nats://127.0.0.1:4222 PORT=8081 node server.js
//   curl -i -X POST localhost:8081/v1/auth/login -d 'user=alice&password=wrong'
//
// Every failed login becomes an event with status 401 and the attempted user,
// which Vigil's brute-force and credential-stuffing rules watch.

import http from "node:http";
import { createEmitter, withVigil, setUser, setEndpoint, requestId } from "./index.js";

const emitter = createEmitter({
  servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222",
  service: "loginapi-node",
  onError: (err) => console.error("vigil: publishing failing, events are kept and retried:", err.message),
});

function readForm(req) {
  return new Promise((resolve) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => {
      if (body.length < 4096) body += chunk;
    });
    req.on("end", () => resolve(new URLSearchParams(body)));
  });
}

async function handler(req, res) {
  const path = req.url.split("?")[0];
  if (req.method === "POST" && path === "/v1/auth/login") {
    setEndpoint(req, "/v1/auth/login");
    const form = await readForm(req);
    const user = form.get("user") ?? "";
    setUser(req, user); // the attempted user name, whether or not it succeeds
    const ok = user === "demo" && form.get("password") === "demo";
    res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
    res.end(JSON.stringify(ok ? { token: "demo-token" } : { error: "invalid credentials", request_id: requestId(req) }));
    return;
  }
  if (req.method === "GET" && path === "/healthz") {
    setEndpoint(req, "/healthz");
    res.end("ok\n");
    return;
  }
  res.writeHead(404).end();
}

const server = http.createServer(withVigil(emitter, handler, {
  trustedProxies: (process.env.TRUSTED_PROXIES ?? "").split(",").filter(Boolean),
}));
server.listen(Number(process.env.PORT ?? 8081), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close();
    emitter.close({ timeoutMs: 5000 }).then((stats) => {
      console.log("vigil:", JSON.stringify({ published: stats.published, dropped: stats.dropped }));
      process.exit(0);
    });
  });
}
