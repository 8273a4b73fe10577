// One WebSocket per page, many topics, reconnecting by itself.
//
// Per topic it remembers the last `seq` it applied. After a reconnect it subscribes with
// `since`, so the server either replays exactly the missed frames (`recovered: true`) or sends
// a fresh snapshot. Frames at or below the last seq are duplicates and are dropped, so a
// total shown on screen is never older than the newest frame received.
import { auth } from "./common.js";

export class Live {
  constructor({ onState, onError } = {}) {
    this.onError = onError || ((frame) => console.warn("panen: server says", frame.code, frame.message));
    this.topics = new Map();  // topic -> {handler, seq}
    this.pending = new Map();  // frame id -> {resolve, reject, timer}
    this.onState = onState || (() => {});
    this.ws = null;
    this.attempt = 0;
    this.nextId = 1;
    this.closed = false;
    this.lastMessage = 0;
    this.connect();
    this.watchdog = setInterval(() => this.heartbeat(), 10000);
    addEventListener("online", () => { if (!this.isOpen()) this.reconnectNow(); });
  }

  isOpen() { return this.ws && this.ws.readyState === WebSocket.OPEN; }

  connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    this.onState(this.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.lastMessage = Date.now();
      if (auth.token) ws.send(JSON.stringify({ type: "hello", token: auth.token }));
      for (const [topic, sub] of this.topics) this.sendSubscribe(topic, sub);
      this.onState("open");
    });
    ws.addEventListener("message", (e) => this.receive(e.data));
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new Error("connection lost")); }
      this.pending.clear();
      for (const [, sub] of this.topics) { sub.ready = false; sub.handler({ type: "disconnected" }); }
      this.onState("closed");
      if (!this.closed) this.scheduleReconnect();
    });
    // An error is always followed by close; the reconnect is handled there.
    ws.addEventListener("error", () => {});
  }

  scheduleReconnect() {
    // Exponential backoff with jitter, so a restarted server is not hit by every page at once.
    const base = Math.min(10000, 300 * 2 ** this.attempt);
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  reconnectNow() {
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    else this.connect();
  }

  heartbeat() {
    if (!this.isOpen()) return;
    // A silent socket may be half-open (a sleeping phone, a dropped NAT entry): ping it, and
    // give up on it if nothing at all has come back for a while.
    if (Date.now() - this.lastMessage > 45000) { this.ws.close(); return; }
    this.ws.send(JSON.stringify({ type: "ping" }));
  }

  sendSubscribe(topic, sub) {
    const frame = { type: "subscribe", topic };
    if (sub.seq !== null) frame.since = sub.seq;
    this.ws.send(JSON.stringify(frame));
  }

  subscribe(topic, handler) {
    const sub = { handler, seq: null, ready: false };
    this.topics.set(topic, sub);
    if (this.isOpen()) this.sendSubscribe(topic, sub);
  }

  // Send a frame; with `expectReply`, resolve with the reply carrying the same id.
  send(frame, { expectReply = false, timeoutMs = 15000 } = {}) {
    if (!this.isOpen()) return Promise.reject(new Error("not connected"));
    if (!expectReply) { this.ws.send(JSON.stringify(frame)); return Promise.resolve(null); }
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error("no reply")); }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  receive(raw) {
    this.lastMessage = Date.now();
    let frame;
    try { frame = JSON.parse(raw); } catch { return; }
    if (frame.id && this.pending.has(frame.id)) {
      const p = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.type === "error") p.reject(Object.assign(new Error(frame.message), { code: frame.code }));
      else p.resolve(frame);
      return;
    }
    if (frame.type === "pong") return;
    const sub = frame.topic ? this.topics.get(frame.topic) : null;
    if (!sub) {
      if (frame.type === "error") this.onError(frame);
      return;
    }
    if (frame.type === "subscribed") {
      // Recovered: the missed frames follow, each applied in order from the seq we had.
      // Not recovered: the snapshot replaces everything we showed.
      if (!frame.recovered || sub.seq === null) sub.seq = frame.seq ?? null;
      sub.ready = true;
      sub.handler(frame);
      return;
    }
    if (typeof frame.seq === "number") {
      if (sub.seq !== null && frame.seq <= sub.seq) return;  // already applied
      sub.seq = frame.seq;
    }
    sub.handler(frame);
  }
}

export function connectionBadge(node, t) {
  return (state) => {
    node.dataset.state = state === "open" ? "open" : "closed";
    node.textContent = t(state === "open" ? "connected" : state === "connecting" ? "connecting" : "reconnecting");
  };
}
