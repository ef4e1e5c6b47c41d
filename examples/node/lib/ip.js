// Client address of a request: the TCP peer, or what X-Forwarded-For says
// when the peer is a trusted proxy.

import { BlockList, isIP } from "node:net";

// parseTrustedProxies turns addresses ("10.0.0.7", "::1") and CIDR prefixes
// ("10.0.0.0/8", "fd00::/8") into a BlockList; it throws on anything else.
export function parseTrustedProxies(list = []) {
  const set = new BlockList();
  for (const entry of list) {
    const [addr, bits, extra] = String(entry).trim().split("/");
    const ip = normalizeIp(addr);
    if (ip === null || extra !== undefined || (bits !== undefined && !/^\d{1,3}$/.test(bits))) {
      throw new Error(`vigil: trusted proxy ${JSON.stringify(entry)} is neither an IP address nor a CIDR prefix`);
    }
    if (bits === undefined) {
      set.addAddress(ip.addr, ip.family);
    } else {
      const prefix = Number(bits);
      if (prefix > (ip.family === "ipv4" ? 32 : 128)) {
        throw new Error(`vigil: trusted proxy ${JSON.stringify(entry)} has a prefix length out of range`);
      }
      set.addSubnet(ip.addr, prefix, ip.family);
    }
  }
  return set;
}

// normalizeIp parses "ip", "ip:port" (IPv4) or "[ipv6]:port", drops an IPv6
// zone and unmaps IPv4-mapped IPv6; null when s is none of these.
export function normalizeIp(s) {
  if (typeof s !== "string") return null;
  s = s.trim();
  let m = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (m) {
    s = m[1];
  } else if ((m = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(s))) {
    s = m[1];
  }
  s = s.replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  if (mapped) s = mapped[1];
  const v = isIP(s);
  if (v === 0) return null;
  return { addr: s, family: v === 4 ? "ipv4" : "ipv6" };
}

// clientIp returns the client's address and whether the request came from
// a trusted proxy. X-Forwarded-For is read right to left, skipping trusted
// proxies; a malformed entry stops the walk at the last trusted hop, so a
// client cannot choose the address it is reported under.
export function clientIp(req, trusted) {
  const peer = normalizeIp(req.socket?.remoteAddress);
  if (peer === null || trusted === null || !trusted.check(peer.addr, peer.family)) {
    return { ip: peer?.addr, viaProxy: false };
  }
  let client = peer.addr;
  const header = req.headers["x-forwarded-for"]; // Node joins repeated headers with ", "
  const entries = typeof header === "string" ? header.split(",") : [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const hop = normalizeIp(entries[i]);
    if (hop === null) break;
    client = hop.addr;
    if (!trusted.check(hop.addr, hop.family)) break;
  }
  return { ip: client, viaProxy: true };
}
