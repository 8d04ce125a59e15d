// The teacher's broadcast page: camera/microphone preview, device choice, publish, live viewer list, end.
import { LessonSocket, completeOffer, peerConfig, setStatus, texts } from "./lesson-socket.js";

const words = texts();
const root = document.getElementById("broadcast");
const lessonId = root.dataset.lesson;
const preview = document.getElementById("preview");
const cameraSelect = document.getElementById("camera");
const micSelect = document.getElementById("microphone");
const startButton = document.getElementById("start");
const endButton = document.getElementById("end");
const statusNode = document.getElementById("status");
const viewerCount = document.getElementById("viewer-count");
const viewerList = document.getElementById("viewer-list");

const state = { stream: null, pc: null, socket: null, lessonState: root.dataset.state, wantPublish: false };
window.jinshi = state;  // for support staff (and tests) to inspect getStats()

const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 25, max: 30 } };

async function openDevices() {
  setStatus(statusNode, "camera", words);
  const constraints = {
    video: cameraSelect.value ? { ...VIDEO, deviceId: { exact: cameraSelect.value } } : VIDEO,
    audio: micSelect.value ? { deviceId: { exact: micSelect.value } } : true,
  };
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const old = state.stream;
    state.stream = stream;
    preview.srcObject = stream;
    if (state.pc) {
      // Switching device while on air: swap tracks in place, no renegotiation.
      for (const sender of state.pc.getSenders()) {
        const track = stream.getTracks().find((t) => sender.track && t.kind === sender.track.kind);
        if (track) await sender.replaceTrack(track);
      }
    }
    if (old) old.getTracks().forEach((t) => t.stop());
    await listDevices();
    startButton.disabled = false;
    if (!state.pc) setStatus(statusNode, "ready", words);
  } catch (error) {
    setStatus(statusNode, "camera_failed", words);
    console.error(error);
  }
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    select.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
      const option = new Option(d.label || `${kind} ${i + 1}`, d.deviceId);
      option.selected = d.deviceId === current;
      return option;
    }));
  };
  const track = (kind) => state.stream && state.stream.getTracks().find((t) => t.kind === kind);
  fill(cameraSelect, "videoinput", track("video") && track("video").getSettings().deviceId);
  fill(micSelect, "audioinput", track("audio") && track("audio").getSettings().deviceId);
}

async function publish() {
  if (!state.stream || !state.socket) return;
  if (state.pc) state.pc.close();
  const pc = new RTCPeerConnection(peerConfig(state.iceServers));
  state.pc = pc;
  for (const track of state.stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [state.stream] });
  pc.addEventListener("connectionstatechange", () => {
    if (state.pc !== pc) return;
    if (pc.connectionState === "connected") {
      state.lastBytes = 0;
      state.lastBytesAt = performance.now();
      setStatus(statusNode, "on_air", words);
      statusNode.dataset.onAir = "1";
    } else if (pc.connectionState === "failed") {
      republish(pc);
    }
  });
  if (statusNode.dataset.status !== "republishing") setStatus(statusNode, "publishing", words);
  const sdp = await completeOffer(pc);
  if (state.pc !== pc) return;
  state.socket.send("publish", { sdp });
}

// aiortc has no ICE restart: when the link breaks (the laptop moved from Wi-Fi to 4G, the school's line
// dropped), publish again on a fresh peer connection. Viewers keep theirs; the picture comes back on it.
function republish(pc) {
  if (state.pc !== pc || !state.wantPublish) return;
  setStatus(statusNode, "republishing", words);
  publish();
}

// The media worker sends RTCP receiver reports every second or so; when nothing at all arrives for
// LINK_DEAD_MS the link is gone, well before ICE gives up on it.
const LINK_DEAD_MS = 1600;
async function checkLink() {
  const pc = state.pc;
  if (!pc || pc.connectionState !== "connected") return;
  const stats = await pc.getStats();
  let bytes = 0;
  stats.forEach((report) => { if (report.type === "transport") bytes += report.bytesReceived || 0; });
  const now = performance.now();
  if (bytes > (state.lastBytes || 0) || !state.lastBytesAt) {
    state.lastBytes = bytes;
    state.lastBytesAt = now;
  } else if (now - state.lastBytesAt > LINK_DEAD_MS) {
    state.lastBytes = 0;
    state.lastBytesAt = 0;
    republish(pc);
  }
}
setInterval(checkLink, 200);

function connect() {
  const socket = new LessonSocket(lessonId);
  state.socket = socket;
  socket.addEventListener("hello", (event) => {
    const hello = event.detail;
    state.iceServers = hello.iceServers;
    state.lessonState = hello.lesson.state;
    showViewers(hello.viewers);
    if (hello.lesson.state === "ended") return showEnded();
    // A reloaded page, or a socket that came back, resumes publishing by itself.
    if (state.wantPublish || hello.lesson.state === "live") {
      state.wantPublish = true;
      endButton.hidden = false;
      startButton.hidden = true;
      // Only the socket dropped while the media kept flowing: nothing to redo.
      const healthy = state.pc && state.pc.connectionState === "connected"
        && performance.now() - state.lastBytesAt < LINK_DEAD_MS;
      if (!healthy) publish();
    }
  });
  socket.addEventListener("answer", async (event) => {
    if (state.pc && state.pc.signalingState === "have-local-offer") {
      await state.pc.setRemoteDescription({ type: "answer", sdp: event.detail.sdp });
    }
  });
  socket.addEventListener("viewers", (event) => showViewers(event.detail));
  socket.addEventListener("state", (event) => {
    state.lessonState = event.detail.state;
    if (event.detail.state === "ended") showEnded();
  });
  socket.addEventListener("error", (event) => {
    statusNode.dataset.status = "error";
    statusNode.textContent = `${words.error}: ${event.detail.message}`;
  });
  socket.addEventListener("refused", (event) => {
    const key = { 4401: "signed_out", 4403: "not_allowed", 4404: "not_found" }[event.detail.code];
    setStatus(statusNode, key, words);
  });
  socket.open();
}

function showViewers(viewers) {
  viewerCount.textContent = String(viewers.count);
  viewerList.replaceChildren(...viewers.names.map((name) => Object.assign(document.createElement("li"), { textContent: name })));
}

function showEnded() {
  state.wantPublish = false;
  if (state.pc) state.pc.close();
  state.pc = null;
  if (state.socket) state.socket.stop();
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  startButton.hidden = true;
  endButton.hidden = true;
  setStatus(statusNode, "ended", words);
}

startButton.addEventListener("click", () => {
  state.wantPublish = true;
  startButton.hidden = true;
  endButton.hidden = false;
  publish();
});
endButton.addEventListener("click", () => {
  if (window.confirm(words.end_confirm)) state.socket.send("end");
});
cameraSelect.addEventListener("change", openDevices);
micSelect.addEventListener("change", openDevices);

if (state.lessonState === "ended") {
  showEnded();
} else {
  openDevices().then(connect);
}
