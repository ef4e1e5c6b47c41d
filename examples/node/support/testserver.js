// Starts the Go test server (testserver/main.go): a real nats-server with
// JetStream and Vigil's stream, which reports every stored message as judged
// by Vigil's own event validator.
//
// VIGIL_NATS_TESTSERVER names a prebuilt binary; without it the server is
// started with `go run ./testserver`.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

export class TestServer {
  url = "";
  messages = []; // "message" reports, in stream order
  #lines = []; // every line, for command answers
  #waiters = new Set();
  #child;
  #exited;

  static async start({ timeoutMs = 120_000 } = {}) {
    const s = new TestServer();
    const bin = process.env.VIGIL_NATS_TESTSERVER;
    s.#child = bin
      ? spawn(bin, [], { stdio: ["pipe", "pipe", "inherit"] })
      : spawn("go", ["run", "./testserver"], { cwd: root, stdio: ["pipe", "pipe", "inherit"] });
    s.#exited = new Promise((resolve) => s.#child.on("exit", resolve));
    createInterface({ input: s.#child.stdout }).on("line", (line) => s.#onLine(line));
    const ready = await s.waitFor(() => s.#lines.find((l) => l.type === "ready"), { timeoutMs, what: "test server ready" });
    s.url = ready.url;
    return s;
  }

  #onLine(line) {
    const msg = JSON.parse(line);
    this.#lines.push(msg);
    if (msg.type === "message") this.messages.push(msg);
    for (const check of this.#waiters) check();
  }

  // waitFor resolves with cond()'s first truthy value, checked on every line
  // the server prints and every 20 ms; it rejects after timeoutMs.
  waitFor(cond, { timeoutMs = 10_000, what = "condition" } = {}) {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const check = () => {
        let v;
        try {
          v = cond();
        } catch (err) {
          return finish(() => reject(err));
        }
        if (v) return finish(() => resolve(v));
        if (Date.now() > deadline) finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)));
      };
      const timer = setInterval(check, 20);
      const finish = (settle) => {
        clearInterval(timer);
        this.#waiters.delete(check);
        settle();
      };
      this.#waiters.add(check);
      check();
    });
  }

  async #command(cmd, answer) {
    const before = this.#lines.length;
    this.#child.stdin.write(cmd + "\n");
    await this.waitFor(() => this.#lines.slice(before).find((l) => l.type === answer || l.type === "error"), { what: answer })
      .then((l) => {
        if (l.type === "error") throw new Error(l.error);
      });
  }

  stopNats() {
    return this.#command("stop", "stopped");
  }

  startNats() {
    return this.#command("start", "started");
  }

  // messagesFor returns the reports of messages on vigil.events.<service>.
  messagesFor(service) {
    return this.messages.filter((m) => m.subject === `vigil.events.${service}`);
  }

  async close() {
    this.#child.stdin.end(); // the server exits at stdin EOF
    await this.#exited;
  }
}
