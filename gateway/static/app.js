// The ocrmesh page: sign up, verify, log in, then stream an image's text over it.
// Plain ES module, no dependencies. Text from the server is only ever set as textContent,
// never as HTML: OCR output is whatever the image says.

const SESSION_KEY = "ocrmesh.session";
const SVG_NS = "http://www.w3.org/2000/svg";
// One NDJSON event is a few hundred bytes; a line longer than this is not ours.
const MAX_EVENT_CHARS = 1 << 20;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- the REST client

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's 422: [{loc: ["body", "email"], msg: "..."}]
    return detail
      .map((item) => {
        const where = Array.isArray(item?.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        const message = String(item?.msg ?? "invalid");
        return where ? `${where}: ${message}` : message;
      })
      .join("; ");
  }
  return "";
}

/** The words for a failed response: the gateway's `detail`, else the status text. */
async function errorFrom(response) {
  let detail = "";
  try {
    detail = describeDetail((await response.json())?.detail);
  } catch {
    // not JSON: a proxy's page, an empty body
  }
  let message = detail || response.statusText || "the request failed";
  const retryAfter = response.headers.get("Retry-After");
  if (response.status === 429 && retryAfter) message += ` (try again in ${retryAfter} s)`;
  return new ApiError(response.status, `${message} (HTTP ${response.status})`);
}

function unreachable(error) {
  return new ApiError(0, `the gateway could not be reached (${error.message})`);
}

async function api(path, { method = "GET", json, token } = {}) {
  const headers = { Accept: "application/json" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
  } catch (error) {
    throw unreachable(error);
  }
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

// ---------------------------------------------------------------- the session

// The token stays in this tab (sessionStorage), never in a cookie.
function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    if (session && typeof session.token === "string" && session.expiresAt > Date.now()) return session;
  } catch {
    // unreadable: start afresh
  }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

let session = loadSession();

function saveSession(token, expiresInSeconds) {
  session = { token, expiresAt: Date.now() + expiresInSeconds * 1000 };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

function forgetSession() {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
}

// ---------------------------------------------------------------- status line

function say(message, kind = "info") {
  const status = $("status");
  status.textContent = message;
  status.dataset.kind = kind;
}

function showSignedIn(user) {
  $("session-name").textContent = `${user.name} <${user.email}>`;
  $("session").hidden = false;
  $("account").hidden = true;
  $("reader").hidden = false;
}

function showSignedOut(message) {
  forgetSession();
  stopReading();
  $("session").hidden = true;
  $("account").hidden = false;
  $("reader").hidden = true;
  if (message) say(message, "error");
}

// ---------------------------------------------------------------- the account forms

function fieldsOf(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** Run `action` for a form's submit with its buttons disabled, reporting failures. */
function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      await action(fieldsOf(form));
    } catch (error) {
      say(error instanceof ApiError ? error.message : `unexpected failure: ${error}`, "error");
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}

function fill(form, name, value) {
  form.elements.namedItem(name).value = value;
}

onSubmit($("signup-form"), async ({ name, email, password }) => {
  await api("auth/register", { method: "POST", json: { name, email, password } });
  fill($("verify-form"), "email", email);
  fill($("login-form"), "username", email);
  say(
    `Check the mail to ${email} for a 6-digit code. With make up, mail is written as ` +
      ".eml files to var/mail/ in the project folder.",
  );
  $("verify-form").elements.namedItem("otp").focus();
});

onSubmit($("verify-form"), async ({ email, otp }) => {
  await api("auth/verify_otp", { method: "POST", json: { email, otp: otp.trim() } });
  fill($("login-form"), "username", email);
  say("Email verified: log in.");
  $("login-form").elements.namedItem("password").focus();
});

$("resend").addEventListener("click", async () => {
  const email = $("verify-form").elements.namedItem("email").value;
  if (!email) {
    say("Enter your email first.", "error");
    return;
  }
  try {
    const reply = await api("auth/generate_otp", { method: "POST", json: { email } });
    say(`${reply.detail}; it is valid for ${Math.round(reply.expires_in_seconds / 60)} minutes.`);
  } catch (error) {
    say(error.message, "error");
  }
});

onSubmit($("login-form"), async ({ username, password }) => {
  const reply = await api("auth/login", { method: "POST", json: { username, password } });
  saveSession(reply.access_token, reply.expires_in);
  $("login-form").reset();
  await showCurrentUser();
  say("Signed in: choose or drop an image.");
});

async function showCurrentUser() {
  try {
    showSignedIn(await api("auth/me", { token: session.token }));
  } catch (error) {
    if (error.status === 401) showSignedOut("Your session has ended: log in again.");
    else say(error.message, "error");
    return;
  }
  await showLanguages();
}

// ---------------------------------------------------------------- the languages

/** The codes ticked in the language list, in the list's order. */
function chosenLanguages() {
  return [...$("languages").querySelectorAll('input[name="language"]:checked')].map((box) => box.value);
}

/** One checkbox per language this deployment reads (GET /ocr/languages), keeping what was
 * ticked; English when nothing was. Left as it is (English) if the list cannot be had: the
 * upload still works, the gateway's 422 names the codes if one is wrong. */
async function showLanguages() {
  let reply;
  try {
    reply = await api("ocr/languages", { token: session.token });
  } catch (error) {
    if (error.status === 401) showSignedOut("Your session has ended: log in again.");
    return;
  }
  const languages = Array.isArray(reply?.languages) ? reply.languages : [];
  if (languages.length === 0) return;
  const ticked = new Set(chosenLanguages());
  if (ticked.size === 0) ticked.add("en");
  const fieldset = $("languages");
  const boxes = languages.map((language) => {
    const code = String(language?.code ?? "");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.name = "language";
    box.value = code;
    box.checked = ticked.has(code);
    const label = document.createElement("label");
    label.title = `${code}, read by ${String(language?.engine ?? "")}`;
    label.append(box, ` ${String(language?.name ?? code)}`);
    return label;
  });
  fieldset.replaceChildren(fieldset.querySelector("legend"), ...boxes);
}

$("logout").addEventListener("click", async () => {
  const token = session?.token;
  showSignedOut();
  say("Signed out.");
  if (token) {
    try {
      await api("auth/logout", { method: "POST", token });
    } catch {
      // the token is gone from this tab either way
    }
  }
});

// ---------------------------------------------------------------- reading an image

/** Each JSON object of an NDJSON body, as it arrives. */
async function* ndjsonEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) yield JSON.parse(line);
    }
    if (buffer.length > MAX_EVENT_CHARS) throw new Error("an event in the stream is too long");
  }
  if (buffer.trim()) yield JSON.parse(buffer);
}

/** The four corners as "x,y x,y ...", or null when the box is not four finite points. */
function polygonPoints(box) {
  if (!Array.isArray(box) || box.length !== 4) return null;
  const points = box.map((p) => (Array.isArray(p) ? [Number(p[0]), Number(p[1])] : [NaN, NaN]));
  if (!points.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y))) return null;
  return points.map(([x, y]) => `${x},${y}`).join(" ");
}

// What the current run has received; what "Copy" and "Download" hand out.
let run = null;

function stopReading() {
  run?.controller.abort();
  run = null;
}

function resetResult(file) {
  const image = $("image");
  if (image.src) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(file);
  $("canvas").classList.remove("no-preview");
  $("boxes").replaceChildren();
  $("boxes").removeAttribute("viewBox");
  $("lines").replaceChildren();
  $("timings").replaceChildren();
  $("timings").hidden = true;
  $("ocr-error").hidden = true;
  $("copy").disabled = true;
  $("download").disabled = true;
  $("progress").textContent = `Reading ${file.name} ...`;
  $("result").hidden = false;
}

function showOcrError(message) {
  const error = $("ocr-error");
  error.textContent = message;
  error.hidden = false;
  $("progress").textContent = "";
}

function highlight(index) {
  for (const element of document.querySelectorAll(".active")) element.classList.remove("active");
  if (index === null) return;
  for (const element of document.querySelectorAll(`[data-index="${index}"]`)) element.classList.add("active");
}

// The stream's events and their fields are defined once, in ocrmesh/rules/ocr_events.py
// (docs/gateway.md, "The OCR stream"). As every reader there, this page skips event types
// and ignores fields it does not know: a newer gateway's additions do not break it.
function onStarted(event) {
  run.started = event;
  const width = Number(event.image_width);
  const height = Number(event.image_height);
  if (width > 0 && height > 0) $("boxes").setAttribute("viewBox", `0 0 ${width} ${height}`);
}

function onLine(event) {
  const index = Number(event.index);
  const text = String(event.text ?? "");
  const confidence = Number(event.confidence);
  run.lines.push({ index, block: Number(event.block), text, confidence, box: event.box });

  const points = polygonPoints(event.box);
  if (points !== null) {
    const polygon = document.createElementNS(SVG_NS, "polygon");
    polygon.setAttribute("points", points);
    polygon.dataset.index = String(index);
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = text;
    polygon.append(title);
    $("boxes").append(polygon);
  }

  const item = document.createElement("li");
  item.dataset.index = String(index);
  item.tabIndex = 0;
  const words = document.createElement("span");
  words.className = "text";
  words.textContent = text;
  const score = document.createElement("span");
  score.className = "confidence";
  score.textContent = Number.isFinite(confidence) ? `${Math.round(confidence * 100)}%` : "";
  score.title = "confidence";
  item.append(words, score);
  $("lines").append(item);
  $("progress").textContent = `${run.lines.length} line${run.lines.length === 1 ? "" : "s"} so far ...`;
}

function milliseconds(value) {
  const number = Number(value);
  return Number.isFinite(number) ? `${Math.round(number)} ms` : "";
}

function onCompleted(event) {
  run.completed = event;
  const timings = event.timings ?? {};
  const rows = [
    ["engine", run.started?.engine ?? ""],
    ["lines", String(event.line_count)],
    ["decode", milliseconds(timings.decode_ms)],
    ["detect", milliseconds(timings.detect_ms)],
    ["recognize", milliseconds(timings.recognize_ms)],
    ["total", milliseconds(timings.total_ms)],
  ];
  const list = $("timings");
  for (const [name, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = name;
    const definition = document.createElement("dd");
    definition.textContent = value;
    list.append(term, definition);
  }
  list.hidden = false;
  const count = Number(event.line_count);
  $("progress").textContent =
    count === 0 ? "No text found in this image." : `${count} line${count === 1 ? "" : "s"} in ${milliseconds(timings.total_ms)}`;
  $("copy").disabled = false;
  $("download").disabled = false;
}

async function readImage(file) {
  if (!session) {
    showSignedOut("Log in first.");
    return;
  }
  stopReading();
  const current = { file, controller: new AbortController(), started: null, lines: [], completed: null };
  run = current;
  resetResult(file);
  const body = new FormData();
  body.append("file", file, file.name);
  // None ticked: the field is left out and the gateway reads English.
  const languages = chosenLanguages();
  if (languages.length > 0) body.append("languages", languages.join(","));

  let response;
  try {
    response = await fetch("ocr/stream", {
      method: "POST",
      headers: { Authorization: `Bearer ${session.token}`, Accept: "application/x-ndjson" },
      body,
      signal: current.controller.signal,
    });
  } catch (error) {
    if (run === current) showOcrError(unreachable(error).message);
    return;
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (run !== current) return;
    if (error.status === 401) showSignedOut("Your session has ended: log in again.");
    $("result").hidden = true; // nothing was read: the message is all there is
    showOcrError(error.message);
    return;
  }
  try {
    for await (const event of ndjsonEvents(response.body)) {
      if (run !== current) return;
      if (event.type === "started") onStarted(event);
      else if (event.type === "line") onLine(event);
      else if (event.type === "completed") onCompleted(event);
      else if (event.type === "error") {
        showOcrError(`${String(event.detail)} (HTTP ${Number(event.status)})`);
        return;
      }
    }
  } catch (error) {
    if (run === current) showOcrError(`the stream broke off: ${error.message}`);
    return;
  }
  if (run === current && !current.completed) showOcrError("the stream ended without a result");
}

function resultJson() {
  const { file, started, lines, completed } = run;
  return {
    file: file.name,
    engine: started?.engine ?? null,
    image_width: started?.image_width ?? null,
    image_height: started?.image_height ?? null,
    lines,
    full_text: completed.full_text,
    line_count: completed.line_count,
    timings: completed.timings,
  };
}

$("copy").addEventListener("click", async () => {
  if (!run?.completed) return;
  try {
    await navigator.clipboard.writeText(run.completed.full_text);
    say("The text is on the clipboard.");
  } catch {
    // navigator.clipboard needs https or localhost
    say("The browser refused the clipboard here: select the lines and copy them instead.", "error");
  }
});

$("download").addEventListener("click", () => {
  if (!run?.completed) return;
  const blob = new Blob([JSON.stringify(resultJson(), null, 2)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `${run.file.name.replace(/\.[^.]*$/, "") || "image"}.ocr.json`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 0);
});

$("file").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) readImage(file);
  event.target.value = ""; // choosing the same file again reads it again
});

const dropzone = $("dropzone");
for (const name of ["dragenter", "dragover"]) {
  dropzone.addEventListener(name, (event) => {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
}
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("dragging"));
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropzone.classList.remove("dragging");
  const [file] = event.dataTransfer.files;
  if (file) readImage(file);
});

// A browser that cannot show the format (TIFF in most): the boxes still show, on a blank sheet.
$("image").addEventListener("error", () => $("canvas").classList.add("no-preview"));

for (const container of [$("boxes"), $("lines")]) {
  container.addEventListener("pointerover", (event) => {
    const target = event.target.closest("[data-index]");
    highlight(target ? target.dataset.index : null);
  });
  container.addEventListener("pointerleave", () => highlight(null));
}
$("lines").addEventListener("focusin", (event) => {
  const target = event.target.closest("[data-index]");
  if (target) highlight(target.dataset.index);
});
$("lines").addEventListener("focusout", () => highlight(null));

if (session) showCurrentUser();
