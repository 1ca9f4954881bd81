// The moderator console: an API key kept in sessionStorage only; batch checks (POST /v1/verify),
// the history of checks (GET /v1/checks), the generation panel (POST /v1/generations) and the
// enhancement panel (POST /v1/enhancements). Which panels show is decided by the key's
// permissions (GET /v1/keys/me), never by trying a route.

import { request, ApiError, filesForm, el, fill, errorBox, dropZone, UrlBag, formatTime, shortHash } from './api.js';
import {
  provenanceSummary, registryFacts, detectorFacts, explanationList, technicalDetails,
  verdictBadge, tamperedBadge, recordLink, VERDICT_CODES, verdictLabel, historyTimeline, trustedByLine, recoveredSection,
  enhancementChain, parentLink, kv,
} from './report.js';

const KEY_STORAGE = 'hallmark.apiKey';
const MAX_FILES_PER_REQUEST = 32;
const HISTORY_PAGE = 10;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// The key

let apiKey = null;

function storedKey() {
  try { return sessionStorage.getItem(KEY_STORAGE); } catch { return null; }
}

function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage disabled: the key lives in this page only.
  }
}

/** Calls the API with the key; a 401 (invalid, revoked or expired key) asks for the key again. */
async function call(path, options = {}) {
  try {
    return await request(path, { ...options, key: apiKey });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      askForKey(errorBox(error, 'The server refused your API key: it is unknown, revoked or expired. Enter a valid key.'));
    }
    throw error;
  }
}

/** The key and what it may do (GET /v1/keys/me); a refused key rejects with its 401. */
async function keyInfo(key) {
  const me = await request('/v1/keys/me', { key });
  const allowed = new Set((me.permissions || []).map((p) => `${p.method} ${p.path}`));
  const may = (...routes) => routes.every((route) => allowed.has(route));
  return {
    me,
    moderate: may('POST /v1/verify', 'GET /v1/checks', 'GET /v1/checks/{id}'),
    generate: may('POST /v1/generations'),
    enhance: may('POST /v1/enhancements'),
  };
}

function askForKey(message) {
  apiKey = null;
  storeKey(null);
  $('key-form').classList.remove('hidden');
  $('key-bar').classList.add('hidden');
  for (const id of ['check-panel', 'history-panel', 'generate-panel', 'enhance-panel']) $(id).classList.add('hidden');
  fill($('key-message'), message || null);
  $('key-input').value = '';
  $('key-input').focus();
}

async function useKey(key) {
  const submit = $('key-submit');
  submit.disabled = true;
  fill($('key-message'), el('p', { class: 'busy', text: 'Checking the key…' }));
  try {
    const caps = await keyInfo(key);
    apiKey = key;
    storeKey(key);
    fill($('key-message'));
    $('key-form').classList.add('hidden');
    $('key-bar').classList.remove('hidden');
    $('key-preview').textContent = `${key.slice(0, 7)}…${key.slice(-4)}`;
    $('key-preview').title = `${caps.me.name} · ${caps.me.role} key ${caps.me.prefix}…`;
    fill($('key-roles'),
      el('span', { class: 'badge info', text: `${caps.me.role} key` }),
      caps.moderate ? el('span', { class: 'badge good', text: 'Can check images' }) : null,
      caps.generate ? el('span', { class: 'badge good', text: 'Can generate' }) : null,
      caps.enhance ? el('span', { class: 'badge good', text: 'Can enhance' }) : null,
      !caps.moderate && !caps.generate && !caps.enhance ? el('span', { class: 'badge warn', text: 'No console rights' }) : null);
    $('check-panel').classList.toggle('hidden', !caps.moderate);
    $('history-panel').classList.toggle('hidden', !caps.moderate);
    $('generate-panel').classList.toggle('hidden', !caps.generate);
    $('enhance-panel').classList.toggle('hidden', !caps.enhance);
    if (caps.moderate) loadHistory(true);
  } catch (error) {
    askForKey(errorBox(error, error.status === 401
      ? 'This key was refused: it is unknown, revoked or expired.'
      : 'The key could not be checked.'));
  } finally {
    submit.disabled = false;
  }
}

$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const key = $('key-input').value.trim();
  if (!key) {
    fill($('key-message'), el('div', { class: 'message error', role: 'alert', text: 'Enter an API key first.' }));
    $('key-input').focus();
    return;
  }
  useKey(key);
});

$('key-forget').addEventListener('click', () => askForKey(
  el('div', { class: 'message info', text: 'The key was forgotten by this tab.' })));

// ---------------------------------------------------------------------------------------------
// Checking images

const checkUrls = new UrlBag();

function manifestSection(report) {
  const s = provenanceSummary(report);
  const p = report.provenance || {};
  return el('section', { 'data-manifest': p.state },
    el('h3', { text: 'Manifest' }),
    el('p', {}, el('span', { class: `badge ${s.tone}`, text: s.badge }), ' ', s.text,
      p.signer?.issuer ? ` Certificate issued by ${p.signer.issuer}.` : ''),
    trustedByLine(report));
}

/** The matched original, fetched with the key (the image route is not public). */
function originalFigure(record, bag) {
  const caption = el('figcaption', {}, 'Matched original · ', recordLink(record.id));
  const figure = el('figure', { class: 'figure', 'data-original': record.id },
    el('p', { class: 'busy', text: 'Loading the original…' }), caption);
  call(`/v1/images/${encodeURIComponent(record.id)}`, { as: 'blob' })
    .then((blob) => figure.firstChild.replaceWith(
      el('img', { src: bag.add(blob), alt: `Matched original, record ${record.id}` })))
    .catch((error) => figure.firstChild.replaceWith(
      el('p', { class: 'hint', text: `Original not available (${error.code}).` })));
  return figure;
}

function reportCard(title, report, file, bag) {
  const figures = [];
  if (file) {
    figures.push(el('figure', { class: 'figure' },
      el('img', { src: bag.add(file), alt: `Uploaded image ${file.name}` }),
      el('figcaption', { text: `Uploaded · ${(report.format || '').toUpperCase()} ${report.width}×${report.height}` })));
  }
  if (report.registry?.record) figures.push(originalFigure(report.registry.record, bag));
  return el('article', { class: 'card', 'data-file': title, 'data-verdict': report.verdict },
    el('div', { class: 'card-head' },
      el('h3', { text: title }),
      el('div', { class: 'badges' }, verdictBadge(report.verdict), report.tampered ? tamperedBadge() : null)),
    el('div', { class: 'card-body' },
      figures.length ? el('div', { class: 'compare' }, figures) : el('div'),
      el('div', { class: 'facts' },
        explanationList(report),
        manifestSection(report),
        enhancementChain(report),
        recoveredSection(report),
        registryFacts(report.registry),
        detectorFacts(report.detector),
        historyTimeline(report),
        technicalDetails(report))));
}

function rejectedCard(title, error) {
  return el('article', { class: 'card rejected', 'data-file': title, 'data-rejected': error.code },
    el('div', { class: 'card-head' },
      el('h3', { text: title }),
      el('div', { class: 'badges' }, el('span', { class: 'badge bad', text: 'Rejected' }))),
    el('div', { class: 'message error', role: 'alert' },
      el('p', {}, el('span', { class: 'code', text: error.code }), error.message),
      error.status ? el('p', { class: 'hint', text: `HTTP ${error.status}` }) : null));
}

async function checkFiles(files) {
  const status = $('check-status');
  const results = $('check-results');
  checkUrls.clear();
  results.replaceChildren();
  fill(status, el('p', { class: 'busy', text: `Checking ${files.length} file${files.length === 1 ? '' : 's'}…` }));
  let done = 0;
  try {
    for (let start = 0; start < files.length; start += MAX_FILES_PER_REQUEST) {
      const batch = files.slice(start, start + MAX_FILES_PER_REQUEST);
      const answer = await call('/v1/verify', { method: 'POST', body: filesForm(batch) });
      answer.results.forEach((item, i) => {
        const name = item.file_name || batch[i]?.name || `file ${start + i + 1}`;
        results.append(item.error
          ? rejectedCard(name, item.error)
          : reportCard(name, item.report, batch[i], checkUrls));
      });
      done += batch.length;
    }
    const rejected = results.querySelectorAll('[data-rejected]').length;
    fill(status, el('div', { class: 'message ok', role: 'status',
      text: `Checked ${done} file${done === 1 ? '' : 's'}${rejected ? `; ${rejected} rejected` : ''}.` }));
    loadHistory(true);
  } catch (error) {
    if (error.status !== 401) fill(status, errorBox(error, 'The check failed.'));
  }
}

dropZone($('check-drop'), $('check-files'), checkFiles);

// ---------------------------------------------------------------------------------------------
// History of checks

const history = { cursors: [null], next: null };
const historyUrls = new UrlBag();

for (const code of VERDICT_CODES) $('history-verdict').append(el('option', { value: code, text: verdictLabel(code) }));

async function loadHistory(reset) {
  if (reset) history.cursors = [null];
  const cursor = history.cursors[history.cursors.length - 1];
  const verdict = $('history-verdict').value;
  const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (cursor) query.set('cursor', cursor);
  if (verdict) query.set('verdict', verdict);
  fill($('history-message'), el('p', { class: 'busy', text: 'Loading…' }));
  try {
    const page = await call(`/v1/checks?${query}`);
    history.next = page.next_cursor || null;
    renderHistory(page.checks, verdict);
    fill($('history-message'));
  } catch (error) {
    if (error.status !== 401) fill($('history-message'), errorBox(error, 'The history could not be loaded.'));
  }
  $('history-newer').disabled = history.cursors.length <= 1;
  $('history-older').disabled = !history.next;
  $('history-page').textContent = `Page ${history.cursors.length}`;
}

function renderHistory(checks, verdict) {
  const rows = $('history-rows');
  if (!checks.length) {
    fill(rows, el('tr', {}, el('td', { colspan: '6', class: 'empty',
      text: verdict ? `No checks with the verdict “${verdictLabel(verdict)}”.` : 'No checks yet.' })));
    return;
  }
  fill(rows, checks.map((check) => el('tr', { 'data-check': check.id, 'data-verdict': check.verdict },
    el('td', { text: formatTime(check.created_at) }),
    el('td', {}, el('span', { title: check.file_sha256 }, check.file_name || shortHash(check.file_sha256))),
    el('td', {}, el('div', { class: 'badges' }, verdictBadge(check.verdict), check.tampered ? tamperedBadge() : null)),
    el('td', {}, check.matched_record_id ? recordLink(check.matched_record_id, shortHash(check.matched_record_id, 8)) : '—'),
    el('td', { text: check.key_name || '—' }),
    el('td', {}, el('button', { type: 'button', class: 'secondary small',
      'aria-label': `Details of the check of ${check.file_name || check.file_sha256}`,
      onclick: () => showCheck(check.id) }, 'Details')))));
}

async function showCheck(id) {
  const detail = $('history-detail');
  historyUrls.clear();
  fill(detail, el('p', { class: 'busy', text: 'Loading the check…' }));
  try {
    const check = await call(`/v1/checks/${encodeURIComponent(id)}`);
    const title = `${check.report.file_name || shortHash(check.report.file_sha256)} · checked ${formatTime(check.created_at)}${check.key_name ? ` by ${check.key_name}` : ''}`;
    const card = reportCard(title, check.report, null, historyUrls);
    card.setAttribute('tabindex', '-1');
    fill(detail, card);
    card.focus();
  } catch (error) {
    if (error.status !== 401) fill(detail, errorBox(error, 'The check could not be loaded.'));
  }
}

$('history-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadHistory(true);
});
$('history-verdict').addEventListener('change', () => loadHistory(true));
$('history-older').addEventListener('click', () => {
  if (!history.next) return;
  history.cursors.push(history.next);
  loadHistory(false);
});
$('history-newer').addEventListener('click', () => {
  if (history.cursors.length <= 1) return;
  history.cursors.pop();
  loadHistory(false);
});

// ---------------------------------------------------------------------------------------------
// Generation

const generateUrls = new UrlBag();

$('generate-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const message = $('generate-message');
  const count = Number($('generate-count').value);
  const seed = $('generate-seed').value.trim();
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    fill(message, el('div', { class: 'message error', role: 'alert', text: 'Count must be a whole number from 1 to 64.' }));
    $('generate-count').focus();
    return;
  }
  if (seed && !/^\d{1,20}$/.test(seed)) {
    fill(message, el('div', { class: 'message error', role: 'alert', text: 'The seed is a whole number (0 to 18446744073709551615), or empty for a random one.' }));
    $('generate-seed').focus();
    return;
  }
  // Built by hand so a seed above 2^53 keeps every digit.
  const body = `{"count":${count}${seed ? `,"seed":${seed}` : ''},"format":"png"}`;
  const submit = $('generate-submit');
  submit.disabled = true;
  generateUrls.clear();
  $('generate-results').replaceChildren();
  fill(message, el('p', { class: 'busy', text: `Generating ${count} image${count === 1 ? '' : 's'}…` }));
  try {
    const text = await call('/v1/generations', { method: 'POST', json: body, as: 'text' });
    const answer = JSON.parse(text);
    const exactSeed = (text.match(/"seed"\s*:\s*(\d+)/) || [])[1] || String(answer.seed);
    fill(message, el('div', { class: 'message ok', role: 'status',
      text: `Generated ${answer.images.length} signed image${answer.images.length === 1 ? '' : 's'} with ${answer.model} (seed ${exactSeed}).` }));
    for (const image of answer.images) $('generate-results').append(thumbnail(image));
  } catch (error) {
    if (error.status !== 401) fill(message, errorBox(error, 'Generation failed.'));
  } finally {
    submit.disabled = false;
  }
});

function thumbnail(image) {
  const name = `hallmark-${image.id}.${image.format === 'jpeg' ? 'jpg' : image.format}`;
  const holder = el('figure', { class: 'thumb', 'data-image': image.id },
    el('p', { class: 'busy', text: 'Loading…' }),
    el('figcaption', {}, el('span', { class: 'mono', title: image.id, text: shortHash(image.id, 8) })));
  call(image.image_url, { as: 'blob' })
    .then((blob) => {
      const url = generateUrls.add(blob);
      holder.firstChild.replaceWith(el('img', { src: url, alt: `Generated image ${image.id}` }));
      holder.append(el('div', { class: 'links' },
        el('a', { class: 'button small', href: url, download: name, text: 'Download' }),
        el('a', { class: 'button small secondary', href: `/?record=${encodeURIComponent(image.id)}`, text: 'Record' })));
    })
    .catch((error) => holder.firstChild.replaceWith(
      el('p', { class: 'hint', text: `Image not available (${error.code}).` })));
  return holder;
}

// ---------------------------------------------------------------------------------------------
// Enhancement: a picture restored, inpainted or upscaled by the served model, shown before and
// after, and the signed result checked like any upload (POST /v1/lookup).

const enhanceUrls = new UrlBag();
const STAGE_SIDE = 256; // CSS pixels of the enlarged picture
const stage = { file: null, picture: null, drag: null };

const enhanceOp = () => $('enhance-op').value;
const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/** "x,y,w,h" → {x, y, w, h} in pixels, or null. */
function parseRect(text) {
  const m = /^\s*(\d{1,5})\s*,\s*(\d{1,5})\s*,\s*(\d{1,5})\s*,\s*(\d{1,5})\s*$/.exec(text || '');
  if (!m) return null;
  const [x, y, w, h] = m.slice(1).map(Number);
  return { x, y, w, h };
}

/** Shows the fields the chosen operation takes: a region for inpaint, a factor for upscale. */
function showOpFields() {
  $('enhance-rect-field').classList.toggle('hidden', enhanceOp() !== 'inpaint');
  $('enhance-factor-field').classList.toggle('hidden', enhanceOp() !== 'upscale');
  $('enhance-canvas').classList.toggle('marking', enhanceOp() === 'inpaint');
  drawStage();
}

/** The canvas gets a whole number of its pixels per picture pixel, so the picture stays sharp. */
function sizeStage() {
  const canvas = $('enhance-canvas');
  const { width, height } = stage.picture || { width: 1, height: 1 };
  const scale = Math.max(1, Math.floor(STAGE_SIDE / Math.max(width, height)));
  canvas.width = stage.picture ? width * scale : STAGE_SIDE;
  canvas.height = stage.picture ? height * scale : STAGE_SIDE;
  return scale;
}

/** The picture, enlarged without smoothing, and the region to inpaint over it. */
function drawStage() {
  const canvas = $('enhance-canvas');
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (!stage.picture) return;
  context.imageSmoothingEnabled = false;
  context.drawImage(stage.picture, 0, 0, canvas.width, canvas.height);
  const rect = enhanceOp() === 'inpaint' ? parseRect($('enhance-rect').value) : null;
  if (!rect) return;
  const s = canvas.width / stage.picture.width;
  context.fillStyle = 'rgba(240, 165, 0, 0.35)';
  context.fillRect(rect.x * s, rect.y * s, rect.w * s, rect.h * s);
  context.strokeStyle = '#f0a500';
  context.lineWidth = 2;
  context.strokeRect(rect.x * s + 1, rect.y * s + 1, rect.w * s - 2, rect.h * s - 2);
}

async function pickPicture() {
  const file = $('enhance-file').files?.[0] || null;
  stage.file = file;
  stage.picture = null;
  fill($('enhance-message'));
  if (file) {
    try {
      stage.picture = await createImageBitmap(file);
    } catch {
      fill($('enhance-message'), el('div', { class: 'message error', role: 'alert', text: `${file.name} could not be read as a picture (PNG, JPEG or WebP).` }));
    }
  }
  const scale = sizeStage();
  $('enhance-stage-caption').textContent = stage.picture
    ? `${file.name} · ${stage.picture.width}×${stage.picture.height} pixels, shown ${scale}× larger`
    : 'Pick a picture to see it here.';
  drawStage();
}

/** The picture pixel under the pointer, kept inside the picture. */
function pixelAt(event) {
  const canvas = $('enhance-canvas');
  const box = canvas.getBoundingClientRect();
  const { width, height } = stage.picture;
  const at = (offset, side, n) => Math.min(n - 1, Math.max(0, Math.floor((offset * n) / side)));
  return {
    x: at(event.clientX - box.left - canvas.clientLeft, canvas.clientWidth, width),
    y: at(event.clientY - box.top - canvas.clientTop, canvas.clientHeight, height),
  };
}

/** The region from where the drag started to the pixel under the pointer, both included. */
function dragTo(event) {
  const start = stage.drag;
  const end = pixelAt(event);
  const x = Math.min(start.x, end.x);
  const y = Math.min(start.y, end.y);
  $('enhance-rect').value = `${x},${y},${Math.abs(end.x - start.x) + 1},${Math.abs(end.y - start.y) + 1}`;
  drawStage();
}

function wireStage() {
  const canvas = $('enhance-canvas');
  canvas.addEventListener('pointerdown', (event) => {
    if (!stage.picture || enhanceOp() !== 'inpaint') return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    stage.drag = pixelAt(event);
    dragTo(event);
  });
  canvas.addEventListener('pointermove', (event) => { if (stage.drag) dragTo(event); });
  const stop = () => { stage.drag = null; };
  canvas.addEventListener('pointerup', stop);
  canvas.addEventListener('pointercancel', stop);
  $('enhance-file').addEventListener('change', pickPicture);
  $('enhance-op').addEventListener('change', showOpFields);
  $('enhance-rect').addEventListener('input', drawStage);
}

/** The multipart form for POST /v1/enhancements, or {problem, field} saying what to fix first. */
function enhancementRequest() {
  const op = enhanceOp();
  if (!stage.file) return { problem: 'Pick a picture first.', field: 'enhance-file' };
  const form = new FormData();
  form.append('image', stage.file, stage.file.name);
  form.append('op', op);
  if (op === 'inpaint') {
    const rect = parseRect($('enhance-rect').value);
    if (!rect || !rect.w || !rect.h) {
      return { problem: 'Mark the region to inpaint: drag over the picture, or type x,y,w,h (whole numbers of pixels, width and height above 0).', field: 'enhance-rect' };
    }
    form.append('rect', `${rect.x},${rect.y},${rect.w},${rect.h}`);
  }
  if (op === 'upscale') form.append('factor', $('enhance-factor').value);
  const seed = $('enhance-seed').value.trim();
  if (seed && !/^\d{1,20}$/.test(seed)) {
    return { problem: 'The seed is a whole number (0 to 18446744073709551615), or empty for a random one.', field: 'enhance-seed' };
  }
  if (seed) form.append('seed', seed);
  return { form };
}

$('enhance-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const message = $('enhance-message');
  const asked = enhancementRequest();
  if (asked.problem) {
    fill(message, el('div', { class: 'message error', role: 'alert', text: asked.problem }));
    $(asked.field).focus();
    return;
  }
  const submit = $('enhance-submit');
  const upload = { file: stage.file, width: stage.picture?.width, height: stage.picture?.height };
  submit.disabled = true;
  enhanceUrls.clear();
  $('enhance-result').replaceChildren();
  fill(message, el('p', { class: 'busy', text: `Enhancing ${upload.file.name} (${enhanceOp()})…` }));
  try {
    const text = await call('/v1/enhancements', { method: 'POST', body: asked.form, as: 'text' });
    const answer = JSON.parse(text);
    // Read from the text so a seed above 2^53 keeps every digit.
    const seed = (text.match(/"seed"\s*:\s*(\d+)/) || [])[1] || String(answer.seed);
    fill(message, el('div', { class: 'message ok', role: 'status',
      text: `Enhanced with ${answer.model} (seed ${seed}): ${answer.description}. The result is signed as an edit of the upload and registered.` }));
    $('enhance-result').append(enhancementCard(answer, upload, seed));
  } catch (error) {
    if (error.status !== 401) fill(message, errorBox(error, 'The enhancement failed.'));
  } finally {
    submit.disabled = false;
  }
});

function beforeFigure(upload) {
  return el('figure', { class: 'figure', 'data-before': '' },
    el('img', { src: enhanceUrls.add(upload.file), alt: `Before: ${upload.file.name}` }),
    el('figcaption', { text: `Before · ${upload.file.name}${upload.width ? ` · ${upload.width}×${upload.height}` : ''}` }));
}

function resultFacts(answer, seed) {
  const image = answer.image;
  return el('section', {},
    el('h3', { text: 'Signed result' }),
    kv([
      ['Record', recordLink(image.id)],
      ['SHA-256', el('span', { class: 'mono', 'data-result-sha256': image.sha256, text: image.sha256 })],
      ['Upload SHA-256', el('span', { class: 'mono' }, parentLink(answer.parent_sha256, answer.parent_sha256))],
      ['Model', `${answer.model} (version ${shortHash(answer.model_version, 8)})`],
      ['Seed', seed],
    ]));
}

/** Before and after side by side, the record, and the verification of the signed result. */
function enhancementCard(answer, upload, seed) {
  const image = answer.image;
  const badges = el('div', { class: 'badges' });
  const after = el('figure', { class: 'figure', 'data-after': image.id },
    el('p', { class: 'busy', text: 'Loading the result…' }),
    el('figcaption', { text: `After · ${answer.operation} · ${image.width}×${image.height}` }));
  const verification = el('section', { 'data-enhance-verify': 'checking' },
    el('h3', { text: 'Verification' }), el('p', { class: 'busy', text: 'Checking the signed result…' }));
  call(image.image_url, { as: 'blob' })
    .then((blob) => {
      const url = enhanceUrls.add(blob);
      after.firstChild.replaceWith(el('img', { src: url, alt: `After: ${answer.operation}, record ${image.id}` }));
      after.append(el('div', { class: 'links' },
        el('a', { class: 'button small', href: url, download: `hallmark-${image.id}.png`, text: 'Download' }),
        el('a', { class: 'button small secondary', href: `/?record=${encodeURIComponent(image.id)}`, text: 'Record' })));
      return verifyResult(blob, image, verification, badges);
    })
    .catch((error) => after.firstChild.replaceWith(
      el('p', { class: 'hint', text: `Result not available (${error.code}).` })));
  return el('article', { class: 'card', 'data-enhancement': image.id, 'data-operation': answer.operation },
    el('div', { class: 'card-head' }, el('h3', { text: `${capitalise(answer.operation)}: ${answer.description}` }), badges),
    el('div', { class: 'card-body' },
      el('div', { class: 'compare' }, beforeFigure(upload), after),
      el('div', { class: 'facts' }, resultFacts(answer, seed), verification)));
}

/** Checks the signed result as anyone would (POST /v1/lookup) and says what the check found. */
async function verifyResult(blob, image, section, badges) {
  const file = new File([blob], `hallmark-${image.id}.png`, { type: blob.type || 'image/png' });
  try {
    const report = await request('/v1/lookup', { method: 'POST', body: filesForm([file]) });
    const s = provenanceSummary(report);
    const ours = report.provenance?.state === 'trusted' && report.provenance?.hallmark?.record_id === image.id;
    section.setAttribute('data-enhance-verify', report.provenance?.state || 'unknown');
    fill(badges, el('span', { class: `badge ${s.tone}`, text: s.badge }),
      ours ? el('span', { class: 'badge info', 'data-signed-by-hallmark': 'true', text: 'Signed by Hallmark' }) : null);
    fill(section, el('h3', { text: 'Verification' }),
      el('p', {}, el('span', { class: `badge ${s.tone}`, text: s.title }), ' ', s.text),
      trustedByLine(report),
      report.registry?.record
        ? el('p', { class: 'match-line' }, el('strong', { text: 'Registered: ' }), 'Hallmark record ', recordLink(report.registry.record.id))
        : el('p', { text: 'No Hallmark record matches the result.' }),
      enhancementChain(report));
  } catch (error) {
    section.setAttribute('data-enhance-verify', 'failed');
    fill(section, el('h3', { text: 'Verification' }), errorBox(error, 'The signed result could not be checked.'));
  }
}

wireStage();
showOpFields();

// ---------------------------------------------------------------------------------------------

const saved = storedKey();
if (saved) useKey(saved); else askForKey(null);
