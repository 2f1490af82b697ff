// signver web app: plain JavaScript, no build step. Talks to the JSON API of the same origin.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
// the service takes a printable ASCII key without spaces around it; any other cannot even be sent as a header
const keyProblem = (key) => (/^[\x20-\x7e]*$/.test(key) && key === key.trim() ? ""
  : "An API key is printable ASCII (letters, digits, punctuation), without spaces around it: this one cannot be sent.");
let apiKey = sessionStorage.getItem("signver-api-key") || "";
if (keyProblem(apiKey)) apiKey = "";
let request = 0; // the newest request wins: an answer for a file no longer chosen is dropped

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

async function api(method, path, body) {
  const headers = apiKey ? { "X-API-Key": apiKey } : {};
  let response;
  try {
    response = await fetch(path, { method, body, headers });
  } catch (error) {
    throw Object.assign(new Error("the service cannot be reached"), { unreachable: true });
  }
  let data = null;
  if ((response.headers.get("content-type") || "").includes("json")) {
    try { data = await response.json(); } catch (error) { data = null; }
  }
  if (!response.ok) {
    const message = data && data.error ? data.error : `HTTP ${response.status}`;
    throw Object.assign(new Error(response.status === 401 ? `${message}. Enter the API key at the top of the page.` : message),
      { status: response.status });
  }
  if (data === null) throw new Error(`the service's answer could not be read (HTTP ${response.status}, not JSON)`);
  return data;
}

async function refreshAfter(error) {
  // the service gone, or a person removed elsewhere: the header and the gallery list say so again
  if (error.unreachable || error.status === 404) await Promise.all([loadHealth(), loadPeople()]);
}

function focusLost(fallback) {
  // a control disabled or rebuilt while focused drops focus to the page's top: put it back
  if (document.activeElement === document.body || document.activeElement === null) fallback.focus();
}

function say(id, text, kind = "") {
  const box = $(id);
  box.textContent = text;
  box.className = `status ${kind}`;
}

const percent = (p) => (p === null || p === undefined ? "n/a" : `${(100 * p).toFixed(1)} %`);
const fixed = (x) => (x === null || x === undefined ? "n/a" : x.toFixed(4));

// -- service status and the gallery ------------------------------------------------------------

for (const name of ["dropout", "clean"]) { // one list of choices for both forms
  $(`enrol-${name}`).append(...[...$(name).options].map((option) => option.cloneNode(true)));
}

function appendChoice(form, field, selectId) {
  const value = $(selectId).value;
  if (value) form.append(field, value); // left as the service is set: no field, so the service reads its own way
}

async function loadHealth() {
  try {
    const h = await api("GET", "/v1/health");
    const missing = ["detector", "cleaner"].filter((m) => !h.models[m].loaded);
    const detector = h.models.detector.loaded ? `, detector ${h.models.detector.name}` : "";
    $("health").textContent = `Service ready: model ${h.models.extractor.name}${detector}, ${h.gallery.people} ${h.gallery.people === 1 ? "person" : "people"} enrolled` +
      (missing.length ? ` (not installed: ${missing.join(", ")})` : "") +
      (h.auth.reads ? "; every check, search and change needs the API key" : h.auth.writes ? "; changes to the gallery need the API key" : "");
    const cleans = (on) => (on ? "cleans" : "does not clean");
    for (const option of document.querySelectorAll("option.service-clean")) {
      if (h.clean) option.textContent = `As the service is set (${cleans(h.clean.signatures)} single signatures, ${cleans(h.clean.documents)} crops from documents)`;
    }
    if (!h.models.cleaner.loaded) {
      for (const option of document.querySelectorAll("option.cleaning")) option.disabled = true; // no cleaner to ask for
    }
    for (const option of document.querySelectorAll("option.service-dropout")) {
      option.textContent = `As the service is set (${h.dropout ? h.dropout : "none"})`;
    }
  } catch (error) {
    $("health").textContent = `Service unavailable: ${error.message}`;
  }
}

async function loadPeople() {
  let people = [];
  try {
    people = (await api("GET", "/v1/people")).people;
  } catch (error) {
    say("gallery-status", `Could not list the gallery: ${error.message}`, "bad");
    return false;
  }
  if ($("gallery-status").classList.contains("bad") && $("gallery-status").textContent.startsWith("Could not list")) say("gallery-status", "");
  const select = $("claimed");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "Nobody: search the gallery (identify)" }));
  const rows = [];
  for (const p of people) {
    select.append(el("option", { value: p.person_id, text: `${p.person_id} (${p.references} references)` }));
    const remove = el("button", { type: "button", class: "danger", "aria-label": `Remove ${p.person_id}`, text: "Remove" });
    remove.addEventListener("click", () => removePerson(p.person_id, remove));
    rows.push(el("tr", {},
      el("th", { scope: "row", text: p.person_id }), el("td", { text: String(p.references) }),
      el("td", { text: Object.keys(p.metadata).length ? JSON.stringify(p.metadata) : "" }),
      el("td", { text: p.enrolled_at }), el("td", {}, remove)));
  }
  if (people.some((p) => p.person_id === chosen)) select.value = chosen;
  $("people").tBodies[0].replaceChildren(...rows);
  if (!people.length) $("people").tBodies[0].append(el("tr", {}, el("td", { colspan: "5", text: "Nobody is enrolled yet." })));
  return true;
}

async function removePerson(personId, button) {
  if (!confirm(`Remove ${personId} and all their references?`)) return;
  button.disabled = true; // a second click would ask again for someone already removed
  try {
    const removed = await api("DELETE", `/v1/people/${encodeURIComponent(personId)}`);
    say("gallery-status", `Removed ${removed.person_id} (${removed.references} references).`, "good");
    await Promise.all([loadPeople(), loadHealth()]);
  } catch (error) {
    say("gallery-status", `Could not remove ${personId}: ${error.message}`, "bad");
    button.disabled = false;
    await refreshAfter(error); // the table rebuilt: focus is put back below
  }
  focusLost(button.isConnected ? button : $("gallery-status"));
}

$("enrol-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  const personId = $("enrol-id").value.trim();
  if (!personId) { say("gallery-status", "Enter the person's id first.", "bad"); $("enrol-id").focus(); return; }
  form.append("person_id", personId);
  for (const file of $("enrol-files").files) form.append("images", file);
  appendChoice(form, "clean", "enrol-clean");
  appendChoice(form, "dropout", "enrol-dropout");
  if ($("enrol-any-shape").checked) form.append("any_shape", "true");
  if ($("enrol-metadata").value.trim()) form.append("metadata", $("enrol-metadata").value.trim());
  say("gallery-status", `Enrolling ${personId}…`, "busy");
  const button = $("enrol-button");
  button.disabled = true; // a second click would enrol the same files again, and be refused as duplicates
  try {
    const person = await api("POST", "/v1/people", form);
    say("gallery-status", `Enrolled ${person.person_id}: ${person.added} added, ${person.references} references in all.` +
      (person.note ? ` Note: ${person.note}` : ""), person.note ? "warn" : "good");
    const clean = $("enrol-clean").value, dropout = $("enrol-dropout").value;
    $("enrol-form").reset();
    $("enrol-clean").value = clean; // how references are read: a setting for the next enrolment too, not one of this one's entries
    $("enrol-dropout").value = dropout;
    await Promise.all([loadPeople(), loadHealth()]);
  } catch (error) {
    say("gallery-status", `Enrolment failed: ${error.message}`, "bad");
    await refreshAfter(error);
  } finally {
    button.disabled = false;
    focusLost(button);
  }
});

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const problem = keyProblem($("api-key").value);
  say("key-status", problem, problem ? "bad" : "");
  if (problem) { $("api-key").focus(); return; }
  apiKey = $("api-key").value;
  sessionStorage.setItem("signver-api-key", apiKey);
  $("key-box").open = false;
  $("key-box").querySelector("summary").focus(); // the form's button is hidden with the box
  loadPeople();
  loadHealth();
  if (kind() === "document" && $("check-status").classList.contains("bad")) previewDocument(); // it may have failed for want of the key
});

// -- checking signatures -----------------------------------------------------------------------

const kind = () => document.querySelector("input[name=kind]:checked").value;
const SINGLE_LABEL = "A single signature"; // the choice for a file that is one signature, as index.html names it

function drawPages(pages, signatures) {
  const view = $("page-view");
  view.replaceChildren();
  for (const page of pages) {
    const onPage = signatures.filter((s) => s.page === page.page);
    const figure = svg("svg", {
      viewBox: `0 0 ${page.width} ${page.height}`, role: "img", class: "page",
      "aria-label": `Page ${page.page + 1}: ${onPage.length} signature${onPage.length === 1 ? "" : "s"} boxed`,
    });
    if (page.image) figure.append(svg("image", { href: page.image, x: 0, y: 0, width: page.width, height: page.height }));
    const stroke = Math.max(2, Math.round(Math.max(page.width, page.height) / 300));
    for (const s of onPage) {
      const state = s.decision ? (s.decision.verified ? "verified" : "rejected")
        : s.candidates && s.candidates.length ? (s.candidates[0].verified ? "verified" : "rejected") : "found";
      const box = s.box;
      const group = svg("g", { class: `box ${state}`, "data-index": s.index });
      group.append(svg("rect", { x: box.x0, y: box.y0, width: box.x1 - box.x0, height: box.y1 - box.y0, "stroke-width": stroke }));
      const label = svg("text", { x: box.x0, y: Math.max(box.y0 - stroke * 2, stroke * 8), "font-size": stroke * 9 });
      label.textContent = `${s.index + 1}${state === "verified" ? " ✓" : state === "rejected" ? " ✗" : ""}`;
      group.append(label);
      figure.append(group);
    }
    view.append(figure);
  }
  const count = signatures.length;
  $("page-caption").textContent = `${count} signature${count === 1 ? "" : "s"} found on ${pages.length} page${pages.length === 1 ? "" : "s"}.`;
  $("page-figure").hidden = false;
  $("result").hidden = false;
}

function decisionText(d) {
  const verdict = d.verified ? `Verified as ${d.person_id}` : `Not verified as ${d.person_id}`;
  return `${verdict}: confidence ${percent(d.confidence)}, claim score ${fixed(d.distance)} ` +
    `${d.verified ? "≤" : ">"} threshold ${fixed(d.threshold)}` + (d.note ? `. Note: ${d.note}` : "");
}

function showDecisions(signatures, mode) {
  const list = el("ol", { class: "decisions" });
  for (const s of signatures) {
    const item = el("li", { class: "decision" });
    const where = s.page === undefined ? "" : ` (page ${s.page + 1}${s.score !== undefined ? `, detector score ${s.score.toFixed(2)}` : ""})`;
    item.append(el("h3", { text: `Signature ${s.index + 1}${where}` }));
    if (s.image) {
      const alt = s.uploaded ? `Signature ${s.index + 1} as uploaded` : `Signature ${s.index + 1} as the model saw it`;
      const crop = el("img", { src: s.image, alt, class: "crop" });
      crop.addEventListener("error", () => crop.remove()); // a TIFF or PDF the browser cannot show
      item.append(crop);
    }
    if (s.note) item.append(el("p", { class: "warn", text: `Note: ${s.note}` })); // e.g. a sideways signature
    if (s.error) {
      item.append(el("p", { class: "bad", text: `Not decided: ${s.error}` }));
    } else if (s.decision) {
      item.append(el("p", { class: `verdict ${s.decision.verified ? "good" : "bad"}`, text: decisionText(s.decision) }));
    } else if (s.candidates) {
      if (!s.candidates.length) item.append(el("p", { text: "The gallery is empty: nobody to compare with." }));
      else {
        const best = s.candidates[0];
        item.append(el("p", { class: `verdict ${best.verified ? "good" : "bad"}`,
          text: best.verified ? `Best match: ${best.person_id} (verified, confidence ${percent(best.confidence)})`
            : "No enrolled person matches: none of the closest is verified." }));
        item.append(el("h4", { text: "Likeliest enrolled people, best first (each scored against their own references and threshold)" }));
      }
      const ranked = el("ol", { class: "candidates", "aria-label": "Likeliest enrolled people, best first" });
      for (const c of s.candidates) ranked.append(el("li", { class: c.verified ? "good" : "", text: decisionText(c) }));
      if (s.candidates.length) item.append(ranked);
    }
    list.append(item);
  }
  if (!signatures.length) list.append(el("li", { text: mode === "detect" ? "No signature found." : "No signature found, so nothing to verify." }));
  $("decisions").replaceChildren(list);
}

function showPerson(person) {
  const card = $("person-card");
  if (!person) { card.hidden = true; return; }
  const facts = el("dl", {},
    el("dt", { text: "References enrolled" }), el("dd", { text: String(person.references) }),
    el("dt", { text: "Enrolled" }), el("dd", { text: person.enrolled_at }));
  for (const [key, value] of Object.entries(person.metadata || {})) {
    facts.append(el("dt", { text: key }), el("dd", { text: typeof value === "string" ? value : JSON.stringify(value) }));
  }
  card.replaceChildren(el("h3", { text: `Claimed: ${person.person_id}` }), facts);
  card.hidden = false;
}

async function previewDocument() {
  const mine = ++request;
  $("result").hidden = true; // what is shown belongs to the file chosen before
  say("check-status", "");
  const file = $("check-file").files[0];
  if (!file || kind() !== "document") return;
  const form = new FormData();
  form.append("document", file);
  form.append("previews", "true");
  appendChoice(form, "dropout", "dropout");
  appendChoice(form, "dpi", "dpi");
  say("check-status", "Looking for signatures…", "busy");
  try {
    const found = await api("POST", "/v1/detect", form);
    if (mine !== request) return;
    const signatures = found.pages.flatMap((p) => p.boxes.map((b) => ({ index: b.index, page: p.page, score: b.score, box: b })));
    drawPages(found.pages, signatures);
    showDecisions(signatures, "detect");
    showPerson(null);
    say("check-status", found.count ? `Found ${found.count} signature${found.count === 1 ? "" : "s"}. Choose the claimed person and press Verify.`
      : `Found no signature on this page. If the file is one signature, choose "${SINGLE_LABEL}".`, found.count ? "good" : "warn");
  } catch (error) {
    if (mine === request) say("check-status", `Could not read the document: ${error.message}`, "bad");
  }
}

async function verifySignature(file, personId, mine) {
  const form = new FormData();
  form.append("image", file);
  appendChoice(form, "clean", "clean");
  appendChoice(form, "dropout", "dropout");
  const result = personId ? await api("POST", `/v1/people/${encodeURIComponent(personId)}/verify`, form)
    : await api("POST", "/v1/identify", form);
  if (mine !== request) return null;
  const signature = personId ? { index: 0, decision: result } : { index: 0, candidates: result.candidates, note: result.note };
  showPerson(personId ? result.person : null);
  $("page-figure").hidden = true;
  signature.image = URL.createObjectURL(file);
  signature.uploaded = true;
  showDecisions([signature], personId ? "verify" : "identify");
  $("result").hidden = false;
  return 1;
}

async function verifyDocument(file, personId, mine) {
  const form = new FormData();
  form.append("document", file);
  if (personId) form.append("person_id", personId);
  appendChoice(form, "clean", "clean");
  appendChoice(form, "dropout", "dropout");
  appendChoice(form, "dpi", "dpi");
  form.append("previews", "true");
  const result = await api("POST", "/v1/documents/verify", form);
  if (mine !== request) return null;
  drawPages(result.pages, result.signatures);
  showDecisions(result.signatures, result.mode);
  showPerson(result.person);
  return result.signatures.length;
}

$("check-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("check-file").files[0];
  if (!file) { say("check-status", "Choose a file first.", "bad"); return; }
  const personId = $("claimed").value;
  const button = $("verify-button");
  button.disabled = true;
  const mine = ++request;
  $("result").hidden = true; // a verdict shown beside another claim, or under a failure, would read as this one's
  say("check-status", personId ? `Verifying against ${personId}…` : "Searching the gallery…", "busy");
  try {
    const started = performance.now();
    const count = kind() === "document" ? await verifyDocument(file, personId, mine) : await verifySignature(file, personId, mine);
    if (count === null) return; // another file was chosen meanwhile
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    say("check-status", count ? `Done in ${seconds} s: ${count} signature${count === 1 ? "" : "s"} ${personId ? "checked" : "searched"}.`
      : `Done in ${seconds} s: no signature found, so nothing was ${personId ? "checked" : "searched"}. If the file is one signature, choose "${SINGLE_LABEL}".`,
    count ? "good" : "warn");
  } catch (error) {
    await refreshAfter(error);
    const gone = personId && $("claimed").value !== personId; // removed elsewhere: the list read again has no such person
    if (mine === request) {
      say("check-status", `Failed: ${error.message}` + (gone ? `. ${personId} is no longer enrolled, so the claimed person is back to ` +
        `"Nobody" (a search of the gallery): choose a person to check a claim.` : ""), "bad");
    }
  } finally {
    button.disabled = false;
    focusLost(button);
  }
});

$("check-file").addEventListener("change", previewDocument);
for (const radio of document.querySelectorAll("input[name=kind]")) radio.addEventListener("change", previewDocument);
$("dropout").addEventListener("change", previewDocument); // the boxes found may change with the colour left out
$("dpi").addEventListener("change", previewDocument);

if (apiKey) $("api-key").value = apiKey;
loadHealth();
loadPeople();
