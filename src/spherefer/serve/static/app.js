// spherefer browser app: live predictions, teaching a new expression, classes, the sphere view.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { stream: null, busy: false, centers: [], face: null, rot: [0.4, -0.5], limits: { min_images: 3, max_images: 50 } };

const profile = () => encodeURIComponent($("profile").value.trim() || "default");
$("apikey").value = localStorage.getItem("spherefer-api-key") || "";
$("apikey").addEventListener("change", () => localStorage.setItem("spherefer-api-key", $("apikey").value));
$("profile").addEventListener("change", refresh);

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function api(method, path, body, write = true) {
  const headers = {};
  // requests that change a bank carry the key, and reads too once one is typed (a server started with --private needs it)
  if ((method !== "GET" && write) || $("apikey").value) headers["X-API-Key"] = $("apikey").value;
  const sep = path.includes("?") ? "&" : "?";
  const response = await fetch(`${path}${sep}profile=${profile()}`, { method, body, headers });
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw Object.assign(new Error(`${response.status}: ${data.detail}`), { data });
  return data;
}

// ------------------------------------------------------------------ camera and predictions

async function startCamera() {
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    status(`camera: ${err.message}`, true);
    return;
  }
  $("video").srcObject = state.stream;
  state.streamId = `webcam-${Math.random().toString(36).slice(2, 10)}`; // the service follows this stream's faces
  $("camera").disabled = true;
  $("teach").disabled = false;
  loop();
}

function snapshot() {
  const video = $("video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

async function loop() {
  if (!state.stream) return;
  if (!state.busy && $("video").videoWidth > 0) {
    state.busy = true;
    try {
      const form = new FormData();
      form.append("file", await snapshot(), "frame.jpg");
      draw(await api("POST", `/v1/predict?sphere=true&stream=${state.streamId}`, form, false));
    } catch (err) {
      status(`predict: ${err.message}`, true);
    }
    state.busy = false;
  }
  setTimeout(loop, 250);
}

function draw(result) {
  const overlay = $("overlay");
  overlay.width = result.width;
  overlay.height = result.height;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  ctx.lineWidth = 3;
  ctx.font = "bold 20px system-ui";
  const labels = [];
  for (const face of result.faces) {
    const [x0, y0, x1, y1] = face.box;
    const color = face.label === "unknown" ? "#ffaa00" : face.label === "rejected" ? "#e62828" : "#28c83c";
    ctx.strokeStyle = color;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const label = face.label === "unknown" && face.nearest ? `unknown (${face.nearest})` : face.label;
    const text = face.cosine == null ? label : `${label} ${face.cosine.toFixed(2)}`;
    ctx.fillStyle = color;
    ctx.fillText(text, x0, Math.max(20, y0 - 6));
    labels.push(text);
  }
  $("labels").textContent = labels.length ? labels.join(" | ") : "no face";
  state.face = result.faces.length && result.faces[0].sphere ? result.faces[0].sphere : null;
  drawSphere();
}

// ------------------------------------------------------------------ teaching and classes

async function teach() {
  const name = $("newname").value.trim();
  const { min_images, max_images } = state.limits;
  const shots = Math.max(min_images, Math.min(max_images, parseInt($("shots").value, 10) || 10));
  if (!name) return status("type a name for the new expression first", true);
  $("teach").disabled = true;
  try {
    const form = new FormData();
    form.append("name", name);
    for (let i = 0; i < shots; i++) {
      status(`snapshot ${i + 1} of ${shots}...`);
      const shot = await snapshot();
      if (!shot) throw new Error("the camera gave no picture");
      form.append("files", shot, `snapshot-${i + 1}.jpg`);
      await new Promise((r) => setTimeout(r, 200));
    }
    status(`enrolling ${name}...`);
    let data;
    try {
      data = await api("POST", "/v1/classes", form);
    } catch (err) {  // refused for what it would take from other classes: the user may insist
      if (!err.data || !err.data.harm || !confirm(`${name} ${err.data.harm.summary}.\n\nEnrol it anyway?`)) throw err;
      form.append("accept_harm", "true");
      data = await api("POST", "/v1/classes", form);
    }
    await loadSphere();
    showClasses(data);
    const harm = data.harm ? `; it ${data.harm.summary}` : "";
    status(`enrolled ${name} from ${shots} snapshots (version ${data.version})${harm}`);
  } catch (err) {
    status(`teach: ${err.message}`, true);
  } finally {
    $("teach").disabled = false;
  }
}

function showClasses(data) {
  $("version").textContent = `profile ${data.profile}, version ${data.version}, threshold ${data.threshold.toFixed(3)}`;
  const list = $("classes");
  list.textContent = "";
  for (const item of data.classes) {
    const li = document.createElement("li");
    li.dataset.name = item.name;
    const center = state.centers.find((c) => c.name === item.name);
    li.innerHTML = `<span class="swatch"></span><span class="name"></span><span class="origin"></span><button>remove</button>`;
    li.querySelector(".swatch").style.background = center ? center.color : "#999";
    li.querySelector(".name").textContent = item.name;
    li.querySelector(".origin").textContent = item.origin === "trained" && !item.count ? "trained" : `${item.origin}, ${item.count} samples`;
    li.querySelector("button").addEventListener("click", () => remove(item.name));
    list.appendChild(li);
  }
}

async function remove(name) {
  try {
    const data = await api("DELETE", `/v1/classes/${encodeURIComponent(name)}`);
    await loadSphere();
    showClasses(data);
    status(`removed ${name} (undo brings it back)`);
  } catch (err) {
    status(`remove: ${err.message}`, true);
  }
}

async function undo() {
  try {
    const data = await api("POST", "/v1/undo");
    await loadSphere();
    showClasses(data);
    status(`undone: ${data.undone}`);
  } catch (err) {
    status(`undo: ${err.message}`, true);
  }
}

async function refresh() {
  try {
    const info = await api("GET", "/v1/info");
    $("model").textContent = `model ${info.model} (${info.embedding_size}-d, ${info.head})`;
    state.limits = info.limits;
    $("shots").min = info.limits.min_images;
    $("shots").max = info.limits.max_images;
    showClasses(await api("GET", "/v1/classes"));
    await loadSphere();
  } catch (err) {
    status(err.message, true);
  }
}

// ------------------------------------------------------------------ sphere view

async function loadSphere() {
  const data = await api("GET", "/v1/sphere");
  state.centers = data.centers;
  $("projection").textContent = data.projection;
  for (const li of $("classes").children) {
    const center = state.centers.find((c) => c.name === li.dataset.name);
    if (center) li.querySelector(".swatch").style.background = center.color;
  }
  drawSphere();
}

function rotate(p) {
  const [ay, ax] = state.rot;
  const x1 = Math.cos(ay) * p[0] + Math.sin(ay) * p[2];
  const z1 = -Math.sin(ay) * p[0] + Math.cos(ay) * p[2];
  const y2 = Math.cos(ax) * p[1] - Math.sin(ax) * z1;
  const z2 = Math.sin(ax) * p[1] + Math.cos(ax) * z1;
  return [x1, y2, z2];
}

function drawSphere() {
  const canvas = $("sphere");
  const ctx = canvas.getContext("2d");
  const r = canvas.width * 0.42;
  const c = canvas.width / 2;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const shade = ctx.createRadialGradient(c - r / 3, c - r / 3, r / 8, c, c, r);
  shade.addColorStop(0, "#f4f6fa");
  shade.addColorStop(1, "#b9c0cc");
  ctx.fillStyle = shade;
  ctx.beginPath();
  ctx.arc(c, c, r, 0, 2 * Math.PI);
  ctx.fill();
  const points = state.centers.map((center) => ({ ...center, q: rotate(center.point) }));
  if (state.face) points.push({ name: "live face", color: "#000", origin: "face", q: rotate(state.face) });
  points.sort((a, b) => a.q[2] - b.q[2]);
  ctx.font = "12px system-ui";
  for (const p of points) {
    const x = c + r * p.q[0];
    const y = c - r * p.q[1];
    ctx.globalAlpha = p.q[2] < 0 ? 0.3 : 1;
    ctx.fillStyle = p.color;
    ctx.strokeStyle = "#000";
    ctx.beginPath();
    if (p.origin === "trained") ctx.arc(x, y, 7, 0, 2 * Math.PI);
    else if (p.origin === "face") ctx.arc(x, y, 5, 0, 2 * Math.PI);
    else for (let k = 0; k < 10; k++) {
      const a = -Math.PI / 2 + (k * Math.PI) / 5;
      const rr = k % 2 ? 4 : 10;
      ctx.lineTo(x + rr * Math.cos(a), y + rr * Math.sin(a));
    }
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = "#111";
    ctx.fillText(p.name, x + 10, p.origin === "face" ? y + 18 : y - 8);
  }
  ctx.globalAlpha = 1;
}

let drag = null;
$("sphere").addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; });
window.addEventListener("pointerup", () => { drag = null; });
window.addEventListener("pointermove", (e) => {
  if (!drag) return;
  state.rot[0] += (e.clientX - drag[0]) / 120;
  state.rot[1] += (e.clientY - drag[1]) / 120;
  drag = [e.clientX, e.clientY];
  drawSphere();
});

$("camera").addEventListener("click", startCamera);
$("teach").addEventListener("click", teach);
$("undo").addEventListener("click", undo);
$("refresh").addEventListener("click", refresh);
refresh();
