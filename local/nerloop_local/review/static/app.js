/* The review page: the human loops waiting for a reviewer, one document at a time, answered as an A2I
   worker answers the crowd-entity-annotation task (a list of {label, startOffset, endOffset}).

   Offsets are Unicode code points, as A2I and Comprehend count them; the DOM counts UTF-16 units. So
   the open text is kept as an array of code points (Array.from splits by code point), spans are
   rendered from slices of that array, and a position in the DOM becomes a code-point offset by
   counting the code points of the text before it. Labels and scores are drawn by CSS (::after), so
   the text in the DOM is exactly the document's.

   Everything shown comes from the API and goes into the page as text, never as HTML.

   A fast reviewer is never held up and no key press is lost: each Enter is an action in one chain
   (state.actions), so a press made while the next document is still opening submits that document
   once it is open, not nothing. The answer itself is sent in the background, in order, and again
   after a failure to reach the service (state.sending); the service takes it at once (200, or 202
   when it waits for the service's round) and refuses a second answer of the same worker (409, which
   here means it has it). Several reviewers per document: the page answers as the worker named in
   its header (kept in localStorage), and the queue lists the loops that worker has not answered. */

const $ = (id) => document.getElementById(id);
const textEl = $("text");
const markSpans = new WeakMap(); // <mark> → the span it shows

const state = {
  queue: [], // the loops waiting, least confident first (from /api/queue)
  skipped: [], // names skipped on this page, in the order skipped: listed last
  answered: new Set(), // names answered on this page (a queue read before an answer may still list them)
  edits: new Map(), // name → its spans as edited here (kept while moving between documents)
  doc: null, // the open document (from /api/loops/<name>)
  chars: [], // its text as code points
  spans: [], // its spans as they stand
  chosen: null, // the span clicked last
  opened: 0, // when it was opened (performance.now), for the answer's time spent
  opening: 0, // counts calls to open(): only the latest one shows its document
  loading: Promise.resolve(), // the latest open(), awaited by an action that needs its document
  actions: Promise.resolve(), // Enter presses, one after the other
  sending: Promise.resolve(), // answers on their way to the service, in order
  unsent: 0, // answers not yet taken by the service
  worker: localStorage.getItem("nerloop-worker") || "local-reviewer",
  timer: 0,
};

// --- small helpers ---------------------------------------------------------------------------------

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw Object.assign(new Error(data.error || `${response.status} ${response.statusText}`),
      { status: response.status });
  }
  return data;
}

function say(text, error = false) {
  $("message").textContent = text;
  $("message").classList.toggle("error", error);
}

const figure = (value) => (value == null ? "–" : Number(value).toFixed(2));
const textOf = (span) => state.chars.slice(span.startOffset, span.endOffset).join("");
const colorOf = (label) => String(Math.max(0, state.doc.labels.indexOf(label)) % 8);
const byOffset = (a, b) => a.startOffset - b.startOffset;
const byConfidence = (a, b) => (a.score == null) - (b.score == null) || (a.score ?? 0) - (b.score ?? 0)
  || byOffset(a, b);

// --- the queue -------------------------------------------------------------------------------------

function ordered() {
  const byName = new Map(state.queue.map((loop) => [loop.name, loop]));
  const skipped = state.skipped.filter((name) => byName.has(name));
  return [...state.queue.filter((loop) => !skipped.includes(loop.name)), ...skipped.map((name) => byName.get(name))];
}

function neighbour(name, step) {
  const list = ordered().filter((loop) => !loop.problem);
  const at = list.findIndex((loop) => loop.name === name);
  return list[at + step]?.name ?? null;
}

async function loadQueue() {
  const { loops } = await api(`/api/queue?worker=${encodeURIComponent(state.worker)}`);
  state.queue = loops.filter((loop) => !state.answered.has(loop.name));
  renderQueue();
}

function renderQueue() {
  const items = ordered().map((loop) => {
    const button = element("button", { type: "button", disabled: Boolean(loop.problem) },
      element("span", { className: "score" }, figure(loop.lowestScore)),
      loop.problem ? "cannot be reviewed" : `${loop.spans} spans` + (loop.reviewers?.needed > 1
        ? ` · ${loop.reviewers.answered} of ${loop.reviewers.needed} reviewers` : ""),
      element("span", { className: "preview" }, loop.problem ?? loop.preview));
    button.dataset.loop = loop.name;
    button.classList.toggle("skipped", state.skipped.includes(loop.name));
    if (loop.name === state.doc?.name) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => open(loop.name));
    return element("li", {}, button);
  });
  $("queue").replaceChildren(...(items.length ? items
    : [element("li", { className: "note" }, "No human loop waits for a reviewer.")]));
}

// --- the open document -----------------------------------------------------------------------------

function open(name) {
  state.loading = openNow(name);
  return state.loading;
}

async function openNow(name) {
  const ticket = ++state.opening;
  try {
    const doc = await api(`/api/loops/${encodeURIComponent(name)}`);
    if (ticket !== state.opening) return; // another document was asked for meanwhile
    state.doc = doc;
    state.chars = Array.from(doc.text);
    state.spans = state.edits.get(name) ?? doc.spans.map((span) => ({ ...span }));
  } catch (error) {
    if (ticket !== state.opening) return;
    say(error.message, true);
    state.doc = null;
    state.spans = [];
  }
  state.chosen = null;
  state.opened = performance.now();
  render();
  renderQueue();
}

function openFirst() {
  const first = ordered().find((loop) => !loop.problem);
  if (first) open(first.name);
}

function render() {
  const doc = state.doc;
  $("doc-title").textContent = doc ? `Document ${doc.document.slice(0, 12)}` : "No document open";
  $("doc-meta").textContent = doc ? `loop ${doc.name} · model ${doc.version} · lowest confidence `
    + `${figure(doc.lowestScore)} · ${state.chars.length} characters` : "";
  renderLabels();
  renderText();
  renderSpans();
  renderActions();
}

function renderLabels() {
  $("labels").replaceChildren(...(state.doc?.labels ?? []).map((label, index) => {
    const button = element("button", { type: "button", title: `label the selected text, or the chosen span, ${label}` },
      element("kbd", {}, String(index + 1)), ` ${label}`);
    button.dataset.color = colorOf(label);
    button.addEventListener("mousedown", (event) => event.preventDefault()); // keep the text selected
    button.addEventListener("click", () => pick(index));
    return button;
  }));
}

function renderText() {
  const slice = (from, to) => state.chars.slice(from, to).join("");
  const parts = [];
  let at = 0;
  for (const span of [...state.spans].sort(byOffset)) {
    const from = Math.max(span.startOffset, at);
    if (from >= span.endOffset) continue; // overlapped by the span before: shown there
    if (from > at) parts.push(slice(at, from));
    const mark = element("mark", {}, slice(from, span.endOffset));
    Object.assign(mark.dataset, {
      color: colorOf(span.label), start: span.startOffset, end: span.endOffset,
      badge: span.score == null ? span.label : `${span.label} ${figure(span.score)}`,
    });
    mark.classList.toggle("chosen", span === state.chosen);
    markSpans.set(mark, span);
    parts.push(mark);
    at = span.endOffset;
  }
  if (at < state.chars.length) parts.push(slice(at, state.chars.length));
  textEl.replaceChildren(...parts);
}

function renderSpans() {
  $("spans").replaceChildren(...[...state.spans].sort(byConfidence).map((span) => {
    const button = element("button", { type: "button" },
      element("span", { className: "label" }, span.label), `“${textOf(span)}”`,
      element("span", { className: "confidence" },
        span.score == null ? span.origin ?? "" : `confidence ${figure(span.score)}`));
    button.dataset.color = colorOf(span.label);
    button.classList.toggle("chosen", span === state.chosen);
    button.addEventListener("click", () => choose(span));
    return element("li", {}, button);
  }));
}

function renderActions() {
  const edited = Boolean(state.doc && state.edits.has(state.doc.name));
  $("submit").firstChild.textContent = edited ? "Submit " : "Accept as it stands ";
  $("submit").disabled = !state.doc;
  $("skip").disabled = !state.doc;
  $("reset").disabled = !edited;
  $("remove").disabled = !state.chosen;
}

// --- editing ---------------------------------------------------------------------------------------

function codePointsBefore(node, offset) {
  const before = document.createRange();
  before.selectNodeContents(textEl);
  before.setEnd(node, offset);
  return Array.from(before.toString()).length;
}

/** The selected text as code-point offsets, white space at its edges left out; null when none. */
function selectedRange() {
  const selection = window.getSelection();
  if (!selection || selection.isCollapsed || !selection.rangeCount) return null;
  const range = selection.getRangeAt(0);
  if (!textEl.contains(range.startContainer) || !textEl.contains(range.endContainer)) return null;
  let start = codePointsBefore(range.startContainer, range.startOffset);
  let end = codePointsBefore(range.endContainer, range.endOffset);
  while (start < end && /\s/u.test(state.chars[start])) start += 1;
  while (end > start && /\s/u.test(state.chars[end - 1])) end -= 1;
  return start < end ? { start, end } : null;
}

function changed(message) {
  state.edits.set(state.doc.name, state.spans);
  render();
  say(message);
}

function pick(index) {
  const label = state.doc?.labels[index];
  if (!label) return;
  const range = selectedRange();
  if (range) addSpan(range, label);
  else if (state.chosen) relabel(state.chosen, label);
  else say("Select some text, or click a span, first.");
}

function addSpan({ start, end }, label) {
  const clash = state.spans.find((span) => span.startOffset < end && start < span.endOffset);
  if (clash) {
    say(`That overlaps ${clash.label} “${textOf(clash)}”: relabel or remove that one instead.`, true);
    return;
  }
  const span = { label, startOffset: start, endOffset: end, score: null, origin: "added" };
  state.spans = [...state.spans, span];
  state.chosen = span;
  window.getSelection().removeAllRanges();
  changed(`Added ${label} “${textOf(span)}”.`);
}

function relabel(span, label) {
  if (span.label === label) return;
  const before = span.label;
  Object.assign(span, { label, score: null, origin: "relabeled" });
  changed(`Relabeled “${textOf(span)}” from ${before} to ${label}.`);
}

function remove() {
  const span = state.chosen;
  if (!span) return;
  state.spans = state.spans.filter((other) => other !== span);
  state.chosen = null;
  changed(`Removed ${span.label} “${textOf(span)}”.`);
}

function choose(span) {
  state.chosen = span;
  render();
  say(`Chosen: ${span.label} “${textOf(span)}”. Press a number to relabel it, Del to remove it.`);
}

function clear() {
  window.getSelection().removeAllRanges();
  state.chosen = null;
  render();
  say("");
}

function reset() {
  if (!state.doc || !state.edits.has(state.doc.name)) return;
  state.edits.delete(state.doc.name);
  state.spans = state.doc.spans.map((span) => ({ ...span }));
  state.chosen = null;
  render();
  say("Back to the model's spans.");
}

// --- moving on -------------------------------------------------------------------------------------

function move(step) {
  if (!state.doc) return;
  const name = neighbour(state.doc.name, step);
  if (name) open(name);
  else say(step > 0 ? "This is the last document." : "This is the first document.");
}

function skip() {
  if (!state.doc) return;
  const name = state.doc.name;
  const next = neighbour(name, 1);
  state.skipped = [...state.skipped.filter((other) => other !== name), name];
  say("Skipped: it waits at the end of the queue.");
  if (next) open(next);
  else renderQueue();
}

function submit() {
  state.actions = state.actions.then(submitOne, submitOne);
  return state.actions;
}

/** Answer the open document as it stands (after the document being opened, if any, is open), and
 * open the next one at once: the answer goes to the service in the background. */
async function submitOne() {
  await state.loading;
  if (!state.doc) return;
  const name = state.doc.name;
  const entities = [...state.spans].sort(byOffset)
    .map(({ label, startOffset, endOffset }) => ({ label, startOffset, endOffset }));
  const seconds = Math.round((performance.now() - state.opened) / 100) / 10;
  const next = neighbour(name, 1) ?? neighbour(name, -1);
  state.answered.add(name);
  state.edits.delete(name);
  state.queue = state.queue.filter((loop) => loop.name !== name);
  state.doc = null;
  send(name, { entities, seconds, worker: state.worker });
  if (next) await open(next);
  else render();
}

function send(name, body) {
  state.unsent += 1;
  renderUnsent();
  state.sending = state.sending.then(() => deliver(name, body, 0));
}

async function deliver(name, body, attempt) {
  try {
    const taken = await api(`/api/loops/${encodeURIComponent(name)}/answer`, body);
    say(`Submitted ${taken.entities.length} spans`
      + (taken.queued ? ": the service takes it after the round it is running." : "; the merge stage takes it next."));
  } catch (error) {
    if (error.status === undefined || error.status >= 500) { // the service is unreachable: again, soon
      say(`Not sent yet (${error.message}); trying again.`, true);
      await new Promise((resolve) => { setTimeout(resolve, Math.min(8000, 500 * 2 ** attempt)); });
      return deliver(name, body, attempt + 1);
    }
    if (error.status !== 409) { // refused: the document comes back to the queue to be answered again
      state.answered.delete(name);
      say(`Not submitted: ${error.message}`, true);
    }
  }
  state.unsent -= 1;
  renderUnsent();
  if (state.unsent === 0) refresh();
  return undefined;
}

function renderUnsent() {
  $("unsent").textContent = state.unsent ? `${state.unsent} answers on their way` : "";
}

function setWorker(value) {
  const worker = value.trim() || "local-reviewer";
  if (worker === state.worker) return;
  state.worker = worker;
  localStorage.setItem("nerloop-worker", worker);
  state.answered.clear();
  state.skipped = [];
  state.edits.clear();
  state.doc = null;
  render();
  refresh();
}

// --- the loop's status -----------------------------------------------------------------------------

function renderStatus(status) {
  const { reviews, active, latest } = status;
  $("merged").textContent = reviews.merged;
  $("toward").textContent = reviews.toward_next_retrain;
  $("batch").textContent = reviews.retrain_batch_size;
  $("waiting").textContent = reviews.loops_waiting;
  $("queued").textContent = status.answers_waiting ?? 0;
  $("active").textContent = active ? `${active.version} · F1 ${figure(active.f1)}` : "none";
  $("latest").textContent = latest ? `${latest.version} ${latest.status}`
    + (latest.f1 == null ? "" : ` · F1 ${figure(latest.f1)}`) : "none";
  const training = status.trainings.map((item) => `${item.version} ${item.status}`).join(", ");
  $("working").textContent = status.working ? "merging…" : training ? `training ${training}` : "idle";
}

/** Read the status and the queue now, then again soon: every 4 s, or faster while the loop works. */
async function refresh() {
  clearTimeout(state.timer);
  let working = false;
  try {
    const [status] = await Promise.all([api("/api/status"), loadQueue()]);
    renderStatus(status);
    working = status.working;
    if (!state.doc) openFirst();
  } catch (error) {
    say(`The service does not answer: ${error.message}`, true);
  }
  state.timer = setTimeout(refresh, working ? 700 : 4000);
}

// --- wiring ----------------------------------------------------------------------------------------

textEl.addEventListener("click", (event) => {
  const mark = event.target.closest("mark");
  if (mark && window.getSelection().isCollapsed) choose(markSpans.get(mark));
});
$("submit").addEventListener("click", submit);
$("worker").value = state.worker;
$("worker").addEventListener("change", (event) => setWorker(event.target.value));
$("skip").addEventListener("click", skip);
$("reset").addEventListener("click", reset);
$("remove").addEventListener("click", remove);

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
  if (event.target instanceof HTMLInputElement) return; // typing a worker id
  const { key } = event;
  const arrow = !event.shiftKey && key.startsWith("Arrow");
  if (/^[1-9]$/.test(key)) pick(Number(key) - 1);
  else if (key === "Enter") submit();
  else if (arrow && (key === "ArrowDown" || key === "ArrowRight")) move(1);
  else if (arrow && (key === "ArrowUp" || key === "ArrowLeft")) move(-1);
  else if (key === "s") skip();
  else if (key === "r") reset();
  else if (key === "Delete" || key === "Backspace") remove();
  else if (key === "Escape") clear();
  else return;
  event.preventDefault();
});

render();
refresh();
