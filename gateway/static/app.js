// The ocrmesh page: sign up, verify, log in, then stream an image's or a document's text
// over it, page by page, and download it as a searchable PDF or text.
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

// ---------------------------------------------------------------- reading an image or a document

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
// The image preview failed to load (a format the browser does not show: TIFF, PDF).
let previewFailed = false;
const DOWNLOAD_BUTTONS = ["copy", "download", "download-pdf", "download-text"];

function isPdf(file) {
  return file.type === "application/pdf" || /\.pdf$/i.test(file.name);
}

function stopReading() {
  run?.controller.abort();
  run = null;
}

function resetResult(file) {
  const image = $("image");
  if (image.src) URL.revokeObjectURL(image.src);
  image.removeAttribute("src");
  // A browser shows no PDF in an <img>: the boxes go on a blank sheet from the start.
  previewFailed = isPdf(file);
  if (!previewFailed) image.src = URL.createObjectURL(file);
  updatePreview();
  $("boxes").replaceChildren();
  $("boxes").removeAttribute("viewBox");
  $("lines").replaceChildren();
  $("timings").replaceChildren();
  $("timings").hidden = true;
  $("ocr-error").hidden = true;
  for (const id of DOWNLOAD_BUTTONS) $(id).disabled = true;
  $("progress").textContent = `Reading ${file.name} ...`;
  $("result").hidden = false;
}

/** The image shows under the boxes only where it is what the boxes are drawn on: the first
 * page, as it was sent (not turned upright or deskewed), in a format the browser shows. */
function updatePreview() {
  const shown = run?.pages.get(run.shownPage);
  const asSent = !shown || (Number(shown.rotation) === 0 && Math.abs(Number(shown.skew) || 0) < 0.05);
  const first = !run || run.shownPage <= 1;
  $("canvas").classList.toggle("no-preview", previewFailed || !asSent || !first);
}

function showOcrError(message) {
  const error = $("ocr-error");
  error.textContent = message;
  error.hidden = false;
  $("progress").textContent = "";
}

/** The boxes of one page over the sheet: the page being read, or the one a line was picked on. */
function showPage(number) {
  if (!run) return;
  run.shownPage = number;
  const page = run.pages.get(number);
  const width = Number(page?.width ?? run.started?.image_width);
  const height = Number(page?.height ?? run.started?.image_height);
  const boxes = $("boxes");
  if (width > 0 && height > 0) boxes.setAttribute("viewBox", `0 0 ${width} ${height}`);
  boxes.replaceChildren(...run.lines.filter((line) => line.page === number).map(polygonFor).filter(Boolean));
  for (const heading of document.querySelectorAll(".page-heading")) {
    heading.classList.toggle("shown", Number(heading.dataset.page) === number);
  }
  updatePreview();
}

function polygonFor(line) {
  const points = polygonPoints(line.box);
  if (points === null) return null;
  const polygon = document.createElementNS(SVG_NS, "polygon");
  polygon.setAttribute("points", points);
  polygon.dataset.index = String(line.index);
  const title = document.createElementNS(SVG_NS, "title");
  title.textContent = line.text;
  polygon.append(title);
  return polygon;
}

/** "Page 2 of 4 · turned 90° · deskewed 1.5° · PDF text layer" */
function pageTitle(event) {
  const count = Number(run.started?.page_count) || 1;
  const parts = [count > 1 ? `Page ${Number(event.page)} of ${count}` : `Page ${Number(event.page)}`];
  const rotation = Number(event.rotation);
  const skew = Number(event.skew);
  if (rotation) parts.push(`turned ${rotation}°`);
  if (Number.isFinite(skew) && Math.abs(skew) >= 0.05) parts.push(`deskewed ${skew}°`);
  parts.push(event.source === "text_layer" ? "PDF text layer" : "OCR");
  return parts.join(" · ");
}

/** The list a page's lines go in (made when its page event, or an older server's first
 * line without one, arrives). */
function pageList(number) {
  let list = run.pageLists.get(number);
  if (!list) {
    list = document.createElement("ol");
    list.dataset.page = String(number);
    $("lines").append(list);
    run.pageLists.set(number, list);
  }
  return list;
}

function onPage(event) {
  const number = Number(event.page);
  run.pages.set(number, event);
  const count = Number(run.started?.page_count) || 1;
  // A document's pages get a heading each; a single upright image needs none.
  const document_ = count > 1 || run.started?.document_format === "pdf";
  if (document_ || Number(event.rotation) || event.source === "text_layer") {
    const heading = document.createElement("h3");
    heading.className = "page-heading";
    heading.dataset.page = String(number);
    heading.textContent = pageTitle(event);
    heading.title = "Show this page's boxes";
    $("lines").append(heading);
  }
  pageList(number);
  showPage(number);
  $("progress").textContent = `${count > 1 ? `Page ${number} of ${count} · ` : ""}${run.lines.length} lines so far ...`;
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
  const page = Number(event.page) || 1;
  const words = Array.isArray(event.words) ? event.words : [];
  const line = { index, block: Number(event.block), page, text, confidence, box: event.box, words };
  run.lines.push(line);

  if (page === run.shownPage || run.shownPage === 0) {
    if (run.shownPage === 0) run.shownPage = page;
    const polygon = polygonFor(line);
    if (polygon !== null) $("boxes").append(polygon);
  }

  const item = document.createElement("li");
  item.dataset.index = String(index);
  item.dataset.page = String(page);
  item.tabIndex = 0;
  const textSpan = document.createElement("span");
  textSpan.className = "text";
  textSpan.textContent = text;
  const score = document.createElement("span");
  score.className = "confidence";
  score.textContent = Number.isFinite(confidence) ? `${Math.round(confidence * 100)}%` : "";
  score.title = "confidence";
  item.append(textSpan, score);
  pageList(page).append(item);
  const count = Number(run.started?.page_count) || 1;
  const where = count > 1 ? `Page ${page} of ${count} · ` : "";
  $("progress").textContent = `${where}${run.lines.length} line${run.lines.length === 1 ? "" : "s"} so far ...`;
}

function milliseconds(value) {
  const number = Number(value);
  return Number.isFinite(number) ? `${Math.round(number)} ms` : "";
}

function onCompleted(event) {
  run.completed = event;
  const timings = event.timings ?? {};
  const pageCount = Number(event.page_count) || 1;
  const rows = [
    ["engine", run.started?.engine ?? ""],
    ["pages", String(pageCount)],
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
  const onPages = pageCount > 1 ? ` on ${pageCount} pages` : "";
  $("progress").textContent =
    count === 0
      ? `No text found in this ${pageCount > 1 ? "document" : "image"}.`
      : `${count} line${count === 1 ? "" : "s"}${onPages} in ${milliseconds(timings.total_ms)}`;
  for (const id of DOWNLOAD_BUTTONS) $(id).disabled = false;
}

async function readImage(file) {
  if (!session) {
    showSignedOut("Log in first.");
    return;
  }
  stopReading();
  const current = {
    file,
    controller: new AbortController(),
    languages: chosenLanguages(),
    forceOcr: $("force-ocr").checked,
    started: null,
    pages: new Map(),
    pageLists: new Map(),
    shownPage: 0,
    lines: [],
    completed: null,
  };
  run = current;
  resetResult(file);
  const body = uploadBody(current);

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
      else if (event.type === "page") onPage(event);
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

/** The upload of a run: the file and the options it was read with (the same for its downloads). */
function uploadBody({ file, languages, forceOcr }) {
  const body = new FormData();
  body.append("file", file, file.name);
  // None ticked: the field is left out and the gateway reads English.
  if (languages.length > 0) body.append("languages", languages.join(","));
  if (forceOcr) body.append("force_ocr", "true");
  return body;
}

function resultJson() {
  const { file, started, lines, completed } = run;
  return {
    file: file.name,
    engine: started?.engine ?? null,
    image_width: started?.image_width ?? null,
    image_height: started?.image_height ?? null,
    page_count: completed.page_count ?? 1,
    pages: [...run.pages.values()].map(({ type, ...page }) => page),
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

function saveBlob(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 0);
}

function stem(file) {
  return file.name.replace(/\.[^.]*$/, "") || "document";
}

$("download").addEventListener("click", () => {
  if (!run?.completed) return;
  const blob = new Blob([JSON.stringify(resultJson(), null, 2)], { type: "application/json" });
  saveBlob(blob, `${stem(run.file)}.ocr.json`);
});

/** The file name a Content-Disposition gives (its UTF-8 `filename*` first), or "". */
function attachmentName(disposition) {
  if (!disposition) return "";
  const extended = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  if (extended) {
    try {
      return decodeURIComponent(extended[1].trim());
    } catch {
      // a malformed escape: fall back to the plain name
    }
  }
  const plain = /filename="([^"]*)"/i.exec(disposition);
  return plain ? plain[1] : "";
}

/** Send the run's file again to /ocr?format=<format> and save the answer (a searchable PDF,
 * the text): the gateway renders the document, the browser keeps the file. */
async function downloadRendered(format, what, fallbackName, button) {
  const current = run;
  if (!current?.completed || !session) return;
  button.disabled = true;
  say(`Preparing the ${what} of ${current.file.name} ...`);
  try {
    let response;
    try {
      response = await fetch(`ocr?format=${format}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${session.token}` },
        body: uploadBody(current),
      });
    } catch (error) {
      say(unreachable(error).message, "error");
      return;
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (error.status === 401) showSignedOut("Your session has ended: log in again.");
      else say(error.message, "error");
      return;
    }
    let blob;
    try {
      // A download the gateway had to break off ends the body early: blob() rejects.
      blob = await response.blob();
    } catch (error) {
      say(`the ${what} broke off before its end: ${error.message}`, "error");
      return;
    }
    const name = attachmentName(response.headers.get("Content-Disposition")) || fallbackName;
    saveBlob(blob, name);
    say(`Saved ${name}.`);
  } finally {
    button.disabled = false;
  }
}

$("download-pdf").addEventListener("click", (event) =>
  downloadRendered("pdf", "searchable PDF", `${stem(run.file)}.searchable.pdf`, event.currentTarget),
);
$("download-text").addEventListener("click", (event) =>
  downloadRendered("txt", "text", `${stem(run.file)}.txt`, event.currentTarget),
);

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
$("image").addEventListener("error", () => {
  if (!$("image").getAttribute("src")) return;
  previewFailed = true;
  updatePreview();
});

/** Highlight a line and its box, turning the sheet to the line's page first. */
function pick(target) {
  if (!target) {
    highlight(null);
    return;
  }
  const page = Number(target.dataset.page);
  if (run && page && page !== run.shownPage) showPage(page);
  highlight(target.dataset.index);
}

for (const container of [$("boxes"), $("lines")]) {
  container.addEventListener("pointerover", (event) => pick(event.target.closest("[data-index]")));
  container.addEventListener("pointerleave", () => highlight(null));
}
$("lines").addEventListener("focusin", (event) => {
  const target = event.target.closest("[data-index]");
  if (target) pick(target);
});
$("lines").addEventListener("click", (event) => {
  const heading = event.target.closest(".page-heading");
  if (heading) showPage(Number(heading.dataset.page));
});
$("lines").addEventListener("focusout", () => highlight(null));

if (session) showCurrentUser();
