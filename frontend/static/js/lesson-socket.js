// The lesson WebSocket (signalling + live updates), shared by the broadcast and watch pages.
// Protocol: see live/consumers.py. Reconnects by itself unless the server refused us (44xx) or the
// lesson ended.

export const PROTOCOL_VERSION = 1;
const FATAL_CODES = new Set([4401, 4403, 4404]);
const CONNECT_TIMEOUT_MS = 4000;
const RETRY_MS = 500;

export function texts() {
  const node = document.getElementById("texts");
  return node ? JSON.parse(node.textContent) : {};
}

export class LessonSocket extends EventTarget {
  constructor(lessonId) {
    super();
    this.lessonId = lessonId;
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.resumePeer = null;
  }

  get url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // A page whose peer connection outlived its socket resumes its media identity.
    const resume = this.resumePeer ? `?peer=${encodeURIComponent(this.resumePeer)}` : "";
    return `${scheme}://${location.host}/ws/lessons/${this.lessonId}/${resume}`;
  }

  open() {
    this.stopped = false;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    // A handshake lost on a dead link would otherwise wait for TCP's doubling retries, long after the link
    // is back: give up after CONNECT_TIMEOUT_MS and try afresh.
    const timer = setTimeout(() => { if (ws.readyState === WebSocket.CONNECTING) ws.close(); }, CONNECT_TIMEOUT_MS);
    ws.addEventListener("open", () => { clearTimeout(timer); this.attempt = 0; this.emit("open", {}); });
    ws.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (!message || message.v !== PROTOCOL_VERSION) return;
      if (message.type === "hello") this.resumePeer = message.peer;
      this.emit(message.type, message);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;  // an old socket we already replaced
      this.emit("close", { code: event.code });
      if (FATAL_CODES.has(event.code)) { this.stopped = true; this.emit("refused", { code: event.code }); return; }
      if (this.stopped) return;
      const delay = this.attempt === 0 ? 0 : RETRY_MS;
      this.attempt += 1;
      setTimeout(() => { if (!this.stopped) this.open(); }, delay);
    });
  }

  send(type, payload = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...payload }));
    return true;
  }

  // Drop the current socket and open a fresh one now (the page decided its connection is broken).
  restart() {
    const old = this.ws;
    this.ws = null;
    if (old) old.close();
    this.open();
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// Offer with all ICE candidates in it (the server does not trickle), bounded so a slow gatherer
// cannot stall joining.
export async function completeOffer(pc, timeoutMs = 2000) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      const done = () => { if (pc.iceGatheringState === "complete") { cleanup(); resolve(); } };
      const timer = setTimeout(() => { cleanup(); resolve(); }, timeoutMs);
      const cleanup = () => { clearTimeout(timer); pc.removeEventListener("icegatheringstatechange", done); };
      pc.addEventListener("icegatheringstatechange", done);
    });
  }
  return pc.localDescription.sdp;
}

export function setStatus(node, key, words) {
  node.dataset.status = key;
  node.textContent = words[key] || key;
}

// RTCPeerConnection settings. `?relay=1` on a lesson page sends all media through the TURN servers: support
// staff use it to check a school's TURN path, and it is what a network that blocks direct UDP leaves.
export function peerConfig(iceServers) {
  const relay = new URLSearchParams(location.search).get("relay") === "1";
  return { iceServers: iceServers || [], iceTransportPolicy: relay ? "relay" : "all" };
}
