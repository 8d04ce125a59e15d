// The watch page (classroom projector or teacher): plays the lesson, shows the connection state in words,
// starts by itself when the lesson goes live, and reconnects by itself (new socket and new peer
// connection: the server has no ICE restart) when the link drops.
import { LessonSocket, completeOffer, peerConfig, setStatus, texts } from "./lesson-socket.js";

const words = texts();
const root = document.getElementById("watch");
const lessonId = root.dataset.lesson;
const video = document.getElementById("remote");
const overlay = document.getElementById("overlay");
const statusNode = document.getElementById("status");
const unmuteButton = document.getElementById("unmute");
const viewerCount = document.getElementById("viewer-count");
const layerButtons = { standard: document.getElementById("layer-standard"), light: document.getElementById("layer-light") };

// Nothing received for this long: our link is broken.
const LINK_DEAD_MS = 1600;
// Frames stalled this long although packets arrive: reconnect anyway, in case the server lost our stream.
const LONG_STALL_MS = 10000;
// A peer connection not connected after this long is started again.
const SETUP_MS = 20000;

const state = {
  pc: null, socket: null, lessonState: root.dataset.state, layer: "standard",
  lastFrames: 0, lastProgress: 0, lastBytes: 0, lastBytesAt: 0, reconnects: 0, watchdog: null,
};
window.jinshi = state;  // for support staff (and tests) to inspect getStats()

function show(key) {
  setStatus(statusNode, key, words);
  overlay.hidden = key === "live";
}

async function startWatching() {
  closePeer();
  show(state.reconnects > 0 ? "reconnecting" : "connecting");
  const pc = new RTCPeerConnection(peerConfig(state.iceServers));
  state.pc = pc;
  // Join timeline of this peer connection (performance.now() ms), for diagnosing slow joins.
  const timeline = { offerAt: performance.now(), connectedAt: null, firstFrameAt: null };
  state.timeline = timeline;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    const stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
    stream.getTracks().filter((t) => t.kind === event.track.kind).forEach((t) => stream.removeTrack(t));
    stream.addTrack(event.track);
    if (video.srcObject !== stream) video.srcObject = stream;
    if (event.track.kind === "video" && "requestVideoFrameCallback" in video) {
      video.requestVideoFrameCallback(() => { if (timeline.firstFrameAt === null) timeline.firstFrameAt = performance.now(); });
    }
    play();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected" && timeline.connectedAt === null) timeline.connectedAt = performance.now();
    if (state.pc === pc && pc.connectionState === "failed") reconnect();
  });
  const sdp = await completeOffer(pc);
  if (state.pc !== pc) return;
  state.lastProgress = performance.now();
  state.lastBytes = 0;
  state.lastBytesAt = performance.now();
  state.socket.send("watch", { sdp, layer: state.layer });
}

async function play() {
  try {
    video.muted = false;
    await video.play();
    unmuteButton.hidden = true;
  } catch {
    // Autoplay with sound needs a click on most browsers: play muted and offer a big button.
    video.muted = true;
    unmuteButton.hidden = false;
    try { await video.play(); } catch { /* will retry on next track */ }
  }
}

function closePeer() {
  if (state.pc) { state.pc.close(); state.pc = null; }
}

function reconnect() {
  if (state.lessonState === "ended") return;
  state.reconnects += 1;
  show("reconnecting");
  closePeer();
  state.socket.restart();  // a fresh socket; its hello starts a fresh peer connection
}

// Link health. Our own link is broken when nothing at all arrives any more (the server sends RTCP sender
// reports every second or so even while the teacher is away): then reconnect. Frames that stop while
// packets still arrive mean the teacher's stream paused (a reload, a network switch): keep this connection,
// the picture comes back on it. Only a very long stall with a live link reconnects as a last resort.
async function checkProgress() {
  const pc = state.pc;
  if (!pc || state.lessonState !== "live") return;
  const stats = await pc.getStats();
  let frames = 0;
  let bytes = 0;
  stats.forEach((report) => {
    if (report.type === "inbound-rtp" && report.kind === "video") frames = report.framesDecoded || 0;
    if (report.type === "transport") bytes += report.bytesReceived || 0;
  });
  const now = performance.now();
  if (pc.connectionState !== "connected") {
    // Still setting up (a long, lossy link can take seconds): only give up after SETUP_MS.
    if (now - state.timeline.offerAt > SETUP_MS) reconnect();
    return;
  }
  tuneJitterBuffer(pc, stats);
  if (bytes > state.lastBytes) {
    state.lastBytes = bytes;
    state.lastBytesAt = now;
  }
  if (frames > state.lastFrames) {
    state.lastFrames = frames;
    state.lastProgress = now;
    if (statusNode.dataset.status !== "live") { state.reconnects = 0; show("live"); }
    return;
  }
  const linkDead = now - state.lastBytesAt > LINK_DEAD_MS;
  const longStall = now - state.lastProgress > LONG_STALL_MS;
  if (linkDead || longStall) {
    state.lastFrames = 0;
    reconnect();
  }
}

// On a long round trip a lost packet is re-sent too late for Chrome's default jitter buffer (~150-200 ms),
// so every loss becomes a freeze. Hold about two round trips instead: a little more delay for a lesson
// that is watched, not talked to, and far fewer freezes (measured on a 300 ms, 3 % loss link).
function tuneJitterBuffer(pc, stats) {
  let rtt = 0;
  stats.forEach((report) => {
    if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime) rtt = report.currentRoundTripTime;
  });
  const target = rtt > 0.1 ? Math.min(1500, Math.round(rtt * 2000 + 100)) : null;
  for (const receiver of pc.getReceivers()) {
    if ("jitterBufferTarget" in receiver && receiver.jitterBufferTarget !== target) receiver.jitterBufferTarget = target;
  }
}

function linkHealthy() {
  return Boolean(state.pc && state.pc.connectionState === "connected" && performance.now() - state.lastBytesAt < LINK_DEAD_MS);
}

function connect() {
  const socket = new LessonSocket(lessonId);
  state.socket = socket;
  socket.addEventListener("hello", (event) => {
    const hello = event.detail;
    state.iceServers = hello.iceServers;
    state.lessonState = hello.lesson.state;
    viewerCount.textContent = String(hello.viewers.count);
    if (hello.lesson.state === "live" && linkHealthy()) return;  // only the socket dropped: keep the picture
    state.lastFrames = 0;
    if (hello.lesson.state === "live") startWatching();
    else if (hello.lesson.state === "ended") showEnded();
    else show("waiting");
  });
  socket.addEventListener("answer", async (event) => {
    if (state.pc && state.pc.signalingState === "have-local-offer") {
      await state.pc.setRemoteDescription({ type: "answer", sdp: event.detail.sdp });
    }
  });
  socket.addEventListener("state", (event) => {
    state.lessonState = event.detail.state;
    if (event.detail.state === "live") startWatching();
    if (event.detail.state === "ended") showEnded();
  });
  socket.addEventListener("viewers", (event) => { viewerCount.textContent = String(event.detail.count); });
  socket.addEventListener("error", (event) => {
    if (event.detail.code === "lesson_not_live") { show("waiting"); return; }
    console.warn("lesson error", event.detail);
  });
  socket.addEventListener("close", () => {
    if (state.lessonState === "live" && !linkHealthy()) show("reconnecting");
  });
  socket.addEventListener("refused", (event) => {
    const key = { 4401: "signed_out", 4403: "not_allowed", 4404: "not_found" }[event.detail.code];
    show(key);
  });
  socket.open();
  state.watchdog = setInterval(checkProgress, 250);
}

function showEnded() {
  state.lessonState = "ended";
  closePeer();
  if (state.socket) state.socket.stop();
  clearInterval(state.watchdog);
  video.srcObject = null;
  show("ended");
}

function setLayer(layer) {
  state.layer = layer;
  for (const [name, button] of Object.entries(layerButtons)) button.setAttribute("aria-pressed", String(name === layer));
  state.socket.send("layer", { layer });
}

layerButtons.standard.addEventListener("click", () => setLayer("standard"));
layerButtons.light.addEventListener("click", () => setLayer("light"));
unmuteButton.addEventListener("click", () => { video.muted = false; video.play(); unmuteButton.hidden = true; });
document.getElementById("fullscreen").addEventListener("click", () => {
  const player = document.getElementById("player");
  if (document.fullscreenElement) document.exitFullscreen(); else player.requestFullscreen();
});

if (state.lessonState === "ended") showEnded(); else connect();
