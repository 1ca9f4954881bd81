// What a VerifyReport and a record say, in plain words: shared by the verify page and the console.

import { el, fill, formatTime, shortHash } from './api.js';
import { checkRecordInLog } from './tlog.js';

/** Provenance states → a headline, a tone and a sentence. */
export function provenanceSummary(report) {
  const p = report.provenance || {};
  const signer = signerName(p.signer);
  switch (p.state) {
    case 'trusted':
      return {
        tone: 'good', badge: 'Trusted',
        title: 'Trusted Content Credentials',
        text: `Signed by ${signer}, a signer this service trusts, and unchanged since it was signed.`,
      };
    case 'valid_untrusted':
      return {
        tone: 'warn', badge: 'Untrusted signer',
        title: 'Signed by an untrusted signer',
        text: `The Content Credentials are intact, but they were signed by ${signer}, which this service does not trust. What they claim cannot be taken at face value.`,
      };
    case 'invalid':
      return {
        tone: 'bad', badge: 'Tampered',
        title: 'Tampered: the Content Credentials do not match',
        text: 'The image or its Content Credentials were changed after signing, so nothing they claim can be relied on.',
      };
    case 'no_manifest':
      return {
        tone: 'neutral', badge: 'No Content Credentials',
        title: 'No Content Credentials',
        text: 'The file carries no C2PA manifest. On its own that says little: such metadata is easily removed.',
      };
    case 'unsupported':
      return {
        tone: 'neutral', badge: 'Not readable here',
        title: 'Content Credentials not checked',
        text: p.remote_manifest_url
          ? `The file points at a remote manifest (${p.remote_manifest_url}); it is never fetched, so it was not checked.`
          : 'The file uses a form of Content Credentials this service does not read.',
      };
    case 'unreadable':
      return {
        tone: 'warn', badge: 'Unreadable',
        title: 'Content Credentials unreadable',
        text: `A manifest is there but could not be read${p.error ? ` (${p.error})` : ''}.`,
      };
    default:
      return { tone: 'neutral', badge: p.state || 'Unknown', title: 'Unknown state', text: String(p.state || '') };
  }
}

export function signerName(signer) {
  if (!signer) return 'an unknown signer';
  return signer.common_name || signer.issuer || 'an unnamed signer';
}

const VERDICTS = {
  hallmark_generated: { label: 'Hallmark-generated', tone: 'info' },
  ai_generated_declared: { label: 'AI-generated (declared)', tone: 'warn' },
  likely_synthetic: { label: 'Likely synthetic', tone: 'warn' },
  no_evidence: { label: 'No evidence of AI', tone: 'neutral' },
};

export const VERDICT_CODES = Object.keys(VERDICTS);

export function verdictLabel(verdict) {
  return (VERDICTS[verdict] || { label: verdict }).label;
}

export function verdictBadge(verdict) {
  const v = VERDICTS[verdict] || { label: verdict, tone: 'neutral' };
  return el('span', { class: `badge ${v.tone}`, 'data-verdict': verdict, title: `verdict: ${verdict}`, text: v.label });
}

export function tamperedBadge() {
  return el('span', { class: 'badge bad', 'data-tampered': 'true', text: 'Tampered' });
}

/** The IPTC digital source type in words. */
export function sourceTypeWords(uri) {
  if (!uri) return null;
  const term = String(uri).split('/').pop();
  const words = {
    trainedAlgorithmicMedia: 'AI-generated (trained algorithmic media)',
    compositeWithTrainedAlgorithmicMedia: 'Partly AI-generated (composite with trained algorithmic media)',
    algorithmicallyEnhanced: 'Algorithmically enhanced',
    algorithmicMedia: 'Algorithmic media (not from a trained model)',
    digitalCapture: 'Digital capture (camera)',
    digitalArt: 'Digital art made by a person',
    composite: 'Composite',
    compositeSynthetic: 'Composite including synthetic elements',
    minorHumanEdits: 'AI-generated with minor human edits',
  };
  return words[term] || term;
}

export function isAiSource(uri) {
  // IPTC: "algorithmicMedia" alone is media made without training data, so not "AI" here.
  return /trainedAlgorithmicMedia|compositeSynthetic/i.test(String(uri || ''));
}

/** A definition list of [name, value] pairs; empty values are left out. */
export function kv(pairs) {
  const list = el('dl', { class: 'kv' });
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === '') continue;
    list.append(el('dt', { text: name }), el('dd', {}, value));
  }
  return list;
}

function mono(text, full) {
  return el('span', { class: 'mono', title: full || text, text });
}

/** The status banner for a report's manifest. */
export function statusBanner(report) {
  const s = provenanceSummary(report);
  return el('div', { class: `status ${s.tone}`, 'data-state': report.provenance?.state },
    el('h3', { text: s.title }), el('p', { text: s.text }));
}

/** Who signed it, and what the manifest declares. */
export function provenanceFacts(report) {
  const p = report.provenance || {};
  const parts = [];
  if (p.signer) {
    parts.push(el('section', {},
      el('h3', { text: 'Who signed it' }),
      kv([
        ['Signer', p.signer.common_name || '—'],
        ['Issued by', p.signer.issuer],
        ['Algorithm', p.signer.algorithm],
        ['Signed at', p.signer.time ? formatTime(p.signer.time) : null],
        ['Time-stamp', timeStampText(p.time_stamp)],
        ['Trusted by', typeof p.trusted_by === 'string' && p.trusted_by
          ? el('span', { 'data-trusted-by': clip(p.trusted_by, 80) }, mono(clip(p.trusted_by, 80)), ` (${trustedByWords(p.trusted_by)})`)
          : null],
      ])));
  }
  const h = p.hallmark;
  const declared = [
    ['Origin', sourceTypeWords(p.digital_source_type)],
    ['AI-generated', p.digital_source_type ? (isAiSource(p.digital_source_type) ? 'Yes, as declared' : 'Not declared') : null],
    ['Made with', p.claim_generator],
    ['Title', p.title],
    ['Model', h ? `${h.model} (version ${shortHash(h.model_version, 8)})` : null],
    ['Seed', h ? String(h.seed) : null],
    ['Created', p.signer?.time ? formatTime(p.signer.time) : null],
    ['Hallmark record', h ? recordLink(h.record_id) : null],
  ];
  if (declared.some(([, value]) => value)) {
    parts.push(el('section', {}, el('h3', { text: 'What it declares' }), kv(declared)));
  }
  if ((p.failures || []).length) {
    parts.push(el('section', {},
      el('h3', { text: 'What failed' }),
      el('ul', { class: 'why' }, p.failures.map((code) => el('li', {}, mono(code))))));
  }
  return parts;
}

export function recordLink(id, text = id) {
  return el('a', { href: `/?record=${encodeURIComponent(id)}`, class: 'mono', title: `Hallmark record ${id}`, text });
}

const MATCH_WORDS = {
  file_sha256: 'the exact same file',
  pixel_sha256: 'the same pixels (the file itself differs: metadata stripped or re-saved losslessly)',
  phash: 'a visually near-identical image (perceptual hash)',
};

/** The registry part of a report. */
export function registryFacts(registry) {
  if (!registry) return null;
  if (!registry.match || !registry.record) {
    return el('section', { 'data-registry': 'none' },
      el('h3', { text: 'Hallmark registry' }),
      el('p', { text: 'No Hallmark record matches this image.' }));
  }
  const r = registry.record;
  const distance = registry.distance === null || registry.distance === undefined
    ? null
    : `${registry.distance} of at most ${registry.max_distance} bits (Hamming distance)`;
  return el('section', { 'data-registry': registry.match },
    el('h3', { text: 'Hallmark registry' }),
    el('p', { class: 'match-line' }, el('strong', { text: 'Matched a Hallmark record: ' }), MATCH_WORDS[registry.match] || registry.match),
    kv([
      ['Match', mono(registry.match)],
      ['Distance', distance],
      ['Record', recordLink(r.id)],
      ['Generated', formatTime(r.created_at)],
      ['Model', `${r.model} (version ${shortHash(r.model_version, 8)})`],
      ['Seed', String(r.seed)],
      ['Record signature', r.signature_valid ? `Valid${signedWith(r)}` : 'NOT valid: the record was altered'],
    ]),
    logFacts(r.id));
}

/** The detector part of a console report. */
export function detectorFacts(detector) {
  if (!detector) return null;
  const p = detector.probability;
  const meter = el('span', { class: 'meter', 'aria-hidden': 'true' }, el('span'));
  if (typeof p === 'number') meter.firstChild.style.width = `${Math.round(p * 100)}%`;
  const reading = typeof p === 'number'
    ? `${p.toFixed(3)} against threshold ${detector.threshold.toFixed(3)} → ${detector.likely_synthetic ? 'likely synthetic' : 'below threshold'}`
    : 'no score';
  return el('section', { 'data-detector': detector.likely_synthetic ? 'synthetic' : 'below' },
    el('h3', { text: 'Detector' }),
    kv([
      ['Model', detector.model],
      ['Probability', el('span', {}, meter, reading)],
      ['In domain', detector.out_of_domain
        ? el('span', { class: 'badge warn wrap', text: `Out of domain${detector.out_of_domain_reason ? `: ${detector.out_of_domain_reason}` : ''}` })
        : 'Yes (the score is meaningful for this image)'],
    ]));
}

export function explanationList(report) {
  const lines = report.explanation || [];
  if (!lines.length) return null;
  return el('section', {}, el('h3', { text: 'Why' }), el('ul', { class: 'why' }, lines.map((line) => el('li', { text: line }))));
}

/** File hashes and raw codes, folded away. */
export function technicalDetails(report) {
  const p = report.provenance || {};
  return el('details', {},
    el('summary', { text: 'Technical details' }),
    kv([
      ['File SHA-256', mono(report.file_sha256)],
      ['Format', `${(report.format || '').toUpperCase()} ${report.width}×${report.height}`],
      ['Manifest state', mono(p.state || '—')],
      ['Manifest id', p.manifest_id ? mono(p.manifest_id) : null],
      ['Successes', (p.successes || []).length ? mono(p.successes.join(', ')) : null],
      ['Informational', (p.informational || []).length ? mono(p.informational.join(', ')) : null],
      ['Checked at', formatTime(report.checked_at)],
      ['Check id', report.check_id ? mono(report.check_id) : null],
    ]));
}

/** A full record (GET /v1/records/...). */
// ' (ES256)': the algorithm of the key that signed a record, when the answer names it.
export function signedWith(record) {
  const algorithm = record.signing_key?.algorithm;
  return algorithm ? ` (${algorithm})` : '';
}

export function recordFacts(record) {
  const edit = editOf(record);
  return kv([
    ['Record id', mono(record.id)],
    ['Generated', formatTime(record.created_at)],
    ['Model', record.model],
    ['Model version', mono(record.model_version)],
    ['Seed', String(record.seed)],
    ['Image', `${(record.format || '').toUpperCase()} ${record.width}×${record.height}`],
    ['File SHA-256', mono(record.file_sha256)],
    ['Pixel SHA-256', mono(record.pixel_sha256)],
    ['Perceptual hash', mono(record.phash)],
    ['Manifest id', mono(record.manifest_id)],
    ['Operation', edit ? `${edit.operation} (an enhancement of an upload)` : null],
    ['Upload SHA-256', edit ? el('span', { class: 'mono' }, parentLink(edit.parent, edit.parent)) : null],
    ['Signing key', mono(record.signing_key_id)],
    ['Record signature', record.signature_valid
      ? el('span', { class: 'badge good', text: `Valid${signedWith(record)}` })
      : el('span', { class: 'badge bad', text: 'Not valid: the record was altered' })],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Enhancements: an image Hallmark's model made from an upload (restore, inpaint, upscale). The
// signed manifest's Hallmark assertion and the registry record both name the operation and the
// upload's SHA-256; the chain is drawn from whichever of them this report carries.

const HEX64 = /^[0-9a-f]{64}$/i;

/** The enhancement a Hallmark assertion or record states, or null: {operation, parent, description}. */
function editOf(source) {
  if (!isObject(source)) return null;
  const operation = clip(source.operation, 40);
  const parent = typeof source.parent_sha256 === 'string' && HEX64.test(source.parent_sha256)
    ? source.parent_sha256.toLowerCase() : null;
  if (!operation || !parent) return null;
  return { operation, parent, description: clip(source.description, 200) };
}

/** The enhancement behind a report: the manifest's word first, else the matched record's. */
export function enhancementOf(report) {
  const stated = editOf(report?.provenance?.hallmark);
  if (stated) return { ...stated, source: 'manifest' };
  const registry = report?.registry;
  const recorded = registry?.match ? editOf(registry.record) : null;
  return recorded ? { ...recorded, source: 'record' } : null;
}

/** The link that looks the upload up among Hallmark's records on the verify page. */
export function parentLink(sha256, text = "Look up the upload's record") {
  return el('a', { href: `/?sha256=${encodeURIComponent(sha256)}`, 'data-parent-link': sha256, text });
}

/** "Enhanced by Hallmark (inpaint) from an upload sha256 …": a section, or null for anything else. */
function chainSection(edit, sourceWords) {
  return el('section', { class: 'chain', 'data-chain': edit.operation, 'data-parent': edit.parent },
    el('h3', { text: 'Made from an upload' }),
    el('p', { class: 'chain-line' },
      el('strong', { text: `Enhanced by Hallmark (${edit.operation})` }), ' from an upload sha256 ',
      mono(edit.parent), edit.description ? `: ${edit.description}.` : '.'),
    el('p', { class: 'hint' }, `${sourceWords} `, parentLink(edit.parent),
      ' (Hallmark has a record of it only if Hallmark made it).'));
}

/** The chain of an enhanced image, from its report; null when it is not an enhancement. */
export function enhancementChain(report) {
  const edit = enhancementOf(report);
  if (!edit) return null;
  return chainSection(edit, edit.source === 'manifest'
    ? 'Its signed Content Credentials say so, and carry the upload as the parent ingredient.'
    : "Hallmark's signed record of the matched image says so.");
}

/** The chain of an enhanced record (GET /v1/records); null for a generation. */
export function recordChain(record) {
  const edit = editOf(record);
  return edit ? chainSection(edit, 'The signed record says so.') : null;
}

/**
 * The record's place in the public transparency log, checked in this browser (src/web/tlog.js):
 * a section that fills itself once the proof, the record and the log key have been fetched.
 */
export function logFacts(recordId) {
  const body = el('p', { class: 'busy', text: 'Checking the transparency log…' });
  const section = el('section', { 'data-log': 'checking' }, el('h3', { text: 'Public log' }), body);
  const show = (state, ...children) => {
    section.setAttribute('data-log', state);
    fill(body, ...children);
    body.className = '';
  };
  checkRecordInLog(recordId).then((result) => {
    switch (result.state) {
      case 'included': {
        const when = result.time ? `, checkpoint of ${formatTime(result.time)}` : '';
        // Witness lines are listed, not checked: that takes each witness's own pinned key.
        const witnesses = result.cosigners.length
          ? ` The checkpoint also carries cosignatures from ${result.cosigners.join(', ')} (witnesses that check the log only grows; verify them with each witness's own key).`
          : '';
        show('included',
          el('span', { class: 'badge good', text: 'Proof verified' }), ' ',
          el('strong', { text: `In Hallmark's public log at index ${result.index}${when}.` }),
          ` Checked in this browser: the record's log entry, its path to the root of the checkpoint's tree of ${result.size} entries, and the checkpoint's Ed25519 signature by `,
          el('span', { class: 'mono', text: result.keyId }),
          ` (the key this server publishes at /log/key; monitors pin it).${witnesses}`);
        break;
      }
      case 'pending':
        show('pending', 'Logged; it joins the next signed checkpoint within a second or so. Look it up again for the proof.');
        break;
      case 'not_in_log':
        show('not_in_log', 'This record was made before the public log started and has not been added to it yet.');
        break;
      default:
        show('invalid', el('span', { class: 'badge bad', text: 'Proof does not verify' }), ` ${result.reason}.`);
    }
  }).catch((error) => {
    show('unavailable', `The log could not be checked just now (${error.code || error.message}).`);
  });
  return section;
}

// ---------------------------------------------------------------------------------------------
// Manifest history: the chain of manifests behind the image, oldest first.
// Everything here comes from the uploaded file, so it is read defensively: types are checked,
// strings clipped, lists capped, and the chain is walked in a loop with a hard limit (never by
// recursion), so a hostile file with hundreds of nested ingredients draws quickly.

/** A time-stamp in words: "trusted · DigiCert Timestamp 2023" (the authority from the file). */
function timeStampText(stamp) {
  if (!stamp || typeof stamp !== 'object') return null;
  const words = { trusted: 'trusted', untrusted: 'from an authority no trust list vouches for', invalid: 'invalid' };
  const state = words[stamp.state] || 'unknown';
  const authority = clip(stamp.authority, 80);
  return authority ? `${state} · ${authority}` : state;
}

/** Where the trust in a signer comes from, in words (`trusted_by` names a trust list). */
export function trustedByWords(name) {
  if (typeof name !== 'string' || !name) return null;
  const words = {
    hallmark: "this service's own certificate authority",
    operator: "trust anchors added by this service's operator",
  };
  return words[name] || 'a trust list this service loads';
}

/** "Trusted by: <name> (<words>)", marked with data-trusted-by; null when there is none. */
export function trustedByLine(report, tag = 'p') {
  const name = report?.provenance?.trusted_by;
  if (typeof name !== 'string' || !name) return null;
  return el(tag, { class: 'trusted-by', 'data-trusted-by': clip(name, 80) },
    'Trusted by: ', mono(clip(name, 80)), ` (${trustedByWords(name)})`);
}

const HISTORY = {
  walk: 256,        // manifests followed down the parentOf chain at most
  head: 12,         // oldest steps drawn
  tail: 12,         // newest steps drawn
  summaryEnds: 3,   // steps named at each end of the one-line summary when it is cut
  items: 8,         // placed ingredients drawn per step
  actions: 16,      // actions listed per step
  identities: 4,    // CAWG identity lines per step
  failures: 8,      // failure codes per step
  text: 160,        // characters of any one string from the file
};

const ACTION_WORDS = {
  'c2pa.created': 'created',
  'c2pa.opened': 'opened',
  'c2pa.edited': 'edited',
  'c2pa.cropped': 'cropped',
  'c2pa.color_adjustments': 'colour adjusted',
  'c2pa.resized': 'resized',
  'c2pa.placed': 'placed',
  'c2pa.converted': 'converted',
  'c2pa.filtered': 'filtered',
  'c2pa.drawing': 'drew',
  'c2pa.published': 'published',
  'c2pa.transcoded': 'transcoded',
  'c2pa.repackaged': 'repackaged',
  'c2pa.orientation': 'rotated',
  'c2pa.removed': 'removed',
  'c2pa.redacted': 'redacted',
  'c2pa.watermarked': 'watermarked',
  'c2pa.edited.metadata': 'metadata edited',
};

/** An action label in plain words, lower case: c2pa.cropped → "cropped", c2pa.foo → "foo". */
export function actionWord(label) {
  const text = clip(label, 60) || 'unknown action';
  return ACTION_WORDS[text] || (text.startsWith('c2pa.') ? text.slice(5) : text);
}

/** The digital source type as a short tag: "AI: trainedAlgorithmicMedia", or its term as is. */
export function sourceTypeTag(uri) {
  const term = clip(String(uri || '').split('/').pop(), 60);
  if (!term) return null;
  return /^(trainedAlgorithmicMedia|compositeWithTrainedAlgorithmicMedia)$/.test(term) ? `AI: ${term}` : term;
}

function clip(value, max = HISTORY.text) {
  if (typeof value !== 'string') return null;
  const text = value.replace(/\s+/g, ' ').trim();
  if (!text) return null;
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

const list = (value) => (Array.isArray(value) ? value : []);
const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function agentName(agent) {
  if (typeof agent === 'string') return clip(agent, 80);
  if (isObject(agent)) return clip(agent.name, 80); // C2PA 2 writes {name, version}
  return null;
}

function formatDate(value) {
  if (typeof value !== 'string' || !value) return null;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return clip(value, 40);
  return date.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/**
 * The steps, oldest first: each is { manifest, via, placed, active, state, failures }, where `via`
 * is the parentOf ingredient the manifest was reached through (null for the active one). A parent
 * with no manifest of its own (an original without Content Credentials) is a step with a null
 * manifest.
 */
function historySteps(report) {
  const p = report.provenance || {};
  const steps = [];
  const seen = new Set();
  let manifest = isObject(p.history?.manifest) ? p.history.manifest : null;
  let via = null;
  let cut = false;
  while (manifest || via) {
    if (steps.length >= HISTORY.walk || (manifest && seen.has(manifest))) { cut = true; break; }
    if (manifest) seen.add(manifest);
    const ingredients = manifest ? list(manifest.ingredients).filter(isObject) : [];
    const parent = ingredients.find((i) => i.relationship === 'parentOf') || null;
    steps.push({
      manifest,
      via,
      placed: ingredients.filter((i) => i !== parent),
      active: steps.length === 0,
      state: steps.length === 0 ? p.state : via?.state,
      failures: steps.length === 0 ? list(p.failures) : list(via?.failures),
    });
    if (!manifest) break;
    via = parent;
    manifest = parent && isObject(parent.manifest) ? parent.manifest : null;
  }
  steps.reverse();
  steps.forEach((step, i) => { step.number = i + 1; });
  return { steps, cut };
}

/** Actions of a manifest, bounded, with their words. */
function stepActions(manifest) {
  return list(manifest?.actions).filter(isObject).slice(0, 64).map((a) => ({
    label: clip(a.action, 60) || 'unknown',
    word: actionWord(a.action),
    agent: agentName(a.software_agent),
    source: typeof a.digital_source_type === 'string' ? a.digital_source_type : null,
    when: typeof a.when === 'string' ? a.when : null,
    description: clip(a.description),
  }));
}

const MAIN_ACTIONS = new Set(['c2pa.created', 'c2pa.opened', 'c2pa.edited']);

/** One step in one phrase: "Created with X (AI: …)", "Edited in X: cropped, colour adjusted", "Signed by X on D". */
function stepPhrase(step) {
  const m = step.manifest;
  if (!m) {
    const title = clip(step.via?.title, 60);
    const what = title ? `“${title}”` : 'an image';
    return !step.via?.state || step.via.state === 'no_manifest'
      ? `Started from ${what} without Content Credentials`
      : `Came from ${what} (its own history is not shown)`;
  }
  const actions = stepActions(m);
  const signer = isObject(m.signer) ? m.signer : null;
  const signedBy = `Signed by ${clip(signer?.common_name, 80) || clip(signer?.issuer, 80) || 'an unknown signer'}`;
  const signedOn = formatDate(signer?.time);
  if (!actions.length) return `${signedBy}${signedOn ? ` on ${signedOn}` : ''}`;

  const labels = new Set(actions.map((a) => a.label));
  const agent = actions.find((a) => a.agent)?.agent || clip(m.claim_generator, 80);
  const sources = [...new Set(actions.map((a) => sourceTypeTag(a.source)).filter(Boolean))];
  const minor = [...new Set(actions.filter((a) => !MAIN_ACTIONS.has(a.label)).map((a) => a.word))];
  let verb;
  let preposition = 'in';
  if (labels.has('c2pa.created')) { verb = 'Created'; preposition = 'with'; }
  else if (labels.has('c2pa.edited') || minor.length) verb = 'Edited';
  else verb = 'Opened';
  // A lone action other than an edit reads better as itself: "Published with X", "Converted with X".
  if (verb === 'Edited' && !labels.has('c2pa.edited') && minor.length === 1 && !labels.has('c2pa.opened')
      && /^(published|converted|transcoded|repackaged|watermarked)$/.test(minor[0])) {
    verb = capitalise(minor[0]);
    preposition = 'with';
    minor.length = 0;
  }
  let phrase = verb + (agent ? ` ${preposition} ${agent}` : '');
  if (sources.length) phrase += ` (${sources.slice(0, 3).join(', ')})`;
  const shown = minor.slice(0, 6);
  if (shown.length) phrase += `: ${shown.join(', ')}${minor.length > shown.length ? `, and ${minor.length - shown.length} more` : ''}`;
  if (step.active) phrase += `; ${signedBy.charAt(0).toLowerCase()}${signedBy.slice(1)}${signedOn ? ` on ${signedOn}` : ''}`;
  return phrase;
}

const STEP_STATES = {
  trusted: { tone: 'good', text: 'Trusted' },
  valid_untrusted: { tone: 'warn', text: 'Untrusted signer' },
  invalid: { tone: 'bad', text: 'Invalid' },
  no_manifest: { tone: 'neutral', text: 'No Content Credentials' },
  unreadable: { tone: 'warn', text: 'Unreadable' },
  unsupported: { tone: 'neutral', text: 'Not checked' },
};

function stateBadge(state) {
  const s = STEP_STATES[state];
  if (!s) return null;
  return el('span', { class: `badge ${s.tone}`, 'data-step-state': state, text: s.text });
}

/** A same-origin (or data:) thumbnail that quietly goes away when it cannot be loaded. */
function thumbnailImage(thumbnail, alt) {
  if (!isObject(thumbnail) || typeof thumbnail.url !== 'string') return null;
  const url = thumbnail.url;
  const safe = (url.startsWith('/') && !url.startsWith('//') && !url.startsWith('/\\')) || /^data:image\/[a-z+.-]+[;,]/i.test(url);
  if (!safe) return null;
  const img = el('img', { class: 'history-thumb', src: url, alt: clip(alt, 80) || 'Thumbnail', decoding: 'async' });
  img.addEventListener('error', () => { img.hidden = true; img.classList.add('hidden'); }, { once: true });
  return img;
}

function relationshipWord(relationship) {
  switch (relationship) {
    case 'componentOf': return 'Placed';
    case 'inputTo': return 'Input';
    case 'parentOf': return 'Parent';
    default: return 'Ingredient';
  }
}

function placedItem(ingredient) {
  const title = clip(ingredient.title, 80) || 'untitled ingredient';
  const m = isObject(ingredient.manifest) ? ingredient.manifest : null;
  const signer = m && isObject(m.signer) ? clip(m.signer.common_name, 80) || clip(m.signer.issuer, 80) : null;
  const failures = list(ingredient.failures).map((f) => clip(String(f), 80)).filter(Boolean).slice(0, HISTORY.failures);
  return el('li', { 'data-ingredient': ingredient.relationship || 'unknown' },
    thumbnailImage(ingredient.thumbnail || m?.thumbnail, `Thumbnail of ${title}`),
    el('span', { class: 'item-text' },
      el('span', { class: 'item-rel', text: `${relationshipWord(ingredient.relationship)}: ` }),
      el('span', { class: 'item-title', title, text: title }),
      clip(ingredient.format, 40) ? el('span', { class: 'hint', text: ` · ${clip(ingredient.format, 40)}` }) : null,
      ' ', stateBadge(ingredient.state),
      signer ? el('span', { class: 'hint', text: ` signed by ${signer}` }) : null,
      m?.hallmark === true ? el('span', { class: 'badge info', text: "Hallmark's own" }) : null,
      failures.length ? el('span', { class: 'failures' }, ' ', failures.map((code) => mono(code))) : null));
}

function stepItem(step) {
  const m = step.manifest;
  const signer = m && isObject(m.signer) ? m.signer : null;
  const actions = stepActions(m);
  const title = clip(m?.title, 80) || clip(step.via?.title, 80);
  const format = clip(m?.format, 40) || clip(step.via?.format, 40);
  const failures = step.failures.map((f) => clip(String(f), 80)).filter(Boolean);
  const identities = list(m?.identities).filter(isObject).map((i) => ({ label: clip(i.label, 40), summary: clip(i.summary) }))
    .filter((i) => i.summary);
  const placed = step.placed;
  const when = signer?.time || actions.find((a) => a.when)?.when;
  const thumb = thumbnailImage(m?.thumbnail || step.via?.thumbnail, `Thumbnail of step ${step.number}${title ? `: ${title}` : ''}`);
  const tone = STEP_STATES[step.state]?.tone || 'neutral';

  const lines = [];
  if (title || format) {
    lines.push(el('p', { class: 'step-title' }, title ? el('span', { class: 'item-title', title, text: title }) : null,
      format ? el('span', { class: 'hint', text: `${title ? ' · ' : ''}${format}` }) : null));
  }
  if (m) {
    lines.push(el('p', { class: 'step-signer' },
      signer
        ? `Signed by ${clip(signer.common_name, 80) || '—'}${clip(signer.issuer, 80) ? ` (issued by ${clip(signer.issuer, 80)})` : ''}`
        : 'No signer named',
      when ? ` on ${formatTime(when)}` : '',
      clip(m.claim_generator, 80) ? el('span', { class: 'hint', text: ` · made with ${clip(m.claim_generator, 80)}` }) : null));
  }
  // A lone action without a description is already said by the step's phrase.
  if (actions.length > 1 || actions.some((a) => a.description)) {
    const shown = actions.slice(0, HISTORY.actions);
    lines.push(el('p', { class: 'step-actions' }, 'Actions: ',
      shown.map((a, i) => [i ? ', ' : '', el('span', { title: [a.label, a.agent, a.description].filter(Boolean).join(' · '), text: a.word }),
        a.description ? el('span', { class: 'hint', text: ` (${a.description})` }) : null]),
      actions.length > shown.length ? `, and ${actions.length - shown.length} more` : ''));
  }
  if (identities.length) {
    lines.push(el('ul', { class: 'step-identities' }, identities.slice(0, HISTORY.identities).map((i) =>
      el('li', { 'data-identity': i.label || 'identity' }, el('span', { class: 'hint', text: 'Identity: ' }), i.summary)),
    identities.length > HISTORY.identities ? el('li', { class: 'hint', text: `and ${identities.length - HISTORY.identities} more` }) : null));
  }
  if (failures.length) {
    lines.push(el('p', { class: 'step-failures' }, 'Failed: ',
      failures.slice(0, HISTORY.failures).map((code, i) => [i ? ', ' : '', mono(code)]),
      failures.length > HISTORY.failures ? ` and ${failures.length - HISTORY.failures} more` : ''));
  }
  if (placed.length) {
    lines.push(el('ul', { class: 'step-items' }, placed.slice(0, HISTORY.items).map(placedItem),
      placed.length > HISTORY.items ? el('li', { class: 'hint', text: `and ${placed.length - HISTORY.items} more ingredients` }) : null));
  }

  return el('li', {
    class: `step ${tone}`, 'data-step': String(step.number), 'data-state': step.state || null,
    'data-active': step.active ? 'true' : null, 'data-hallmark': m?.hallmark === true ? 'true' : null,
    title: clip(m?.label, 120) || null,
  },
  el('span', { class: 'step-no', 'aria-hidden': 'true', text: String(step.number) }),
  el('div', { class: 'step-main' },
    el('div', { class: 'step-head' },
      el('strong', { class: 'step-what', text: stepPhrase(step) }),
      el('span', { class: 'badges' },
        stateBadge(step.state),
        m?.hallmark === true ? el('span', { class: 'badge info', 'data-step-hallmark': 'true', text: "Hallmark's own" }) : null,
        step.active ? el('span', { class: 'badge neutral step-current', text: 'This file' }) : null)),
    el('div', { class: 'step-body' }, thumb, lines.length ? el('div', { class: 'step-lines' }, lines) : null)));
}

/** The one-line summary: every step's phrase joined by arrows, the middle cut when long. */
function historySentence(steps) {
  const phrases = (n) => steps.slice(0, n).map(stepPhrase);
  const ends = HISTORY.summaryEnds;
  if (steps.length <= ends * 2 + 1) return steps.map(stepPhrase).join(' → ');
  const head = phrases(ends);
  const tail = steps.slice(-ends).map(stepPhrase);
  return [...head, `… ${steps.length - ends * 2} more steps …`, ...tail].join(' → ');
}

/**
 * The manifest history of a report (`report.provenance.history`) as a timeline, oldest step
 * first: a <section data-history-section> holding a summary sentence ([data-history-summary]) and
 * an <ol class="timeline" data-history> of <li data-step> items. Null when there is no history.
 */
export function historyTimeline(report) {
  const history = report?.provenance?.history;
  if (!isObject(history) || !isObject(history.manifest)) return null;
  const { steps, cut } = historySteps(report);
  if (!steps.length) return null;

  const items = [];
  const { head, tail } = HISTORY;
  if (steps.length > head + tail + 1) {
    items.push(...steps.slice(0, head).map(stepItem));
    items.push(el('li', { class: 'step-gap', 'data-step-gap': String(steps.length - head - tail),
      text: `… ${steps.length - head - tail} more steps …` }));
    items.push(...steps.slice(-tail).map(stepItem));
  } else {
    items.push(...steps.map(stepItem));
  }

  const count = Number.isInteger(history.manifests) && history.manifests > 0 ? history.manifests : null;
  const notes = [];
  notes.push(`${steps.length} step${steps.length === 1 ? '' : 's'}, oldest first`);
  if (count && count !== steps.length) notes.push(`${count} manifest${count === 1 ? '' : 's'} in all`);
  const truncated = history.truncated === true || cut;

  return el('section', { class: 'history', 'data-history-section': 'true', 'data-steps': String(steps.length) },
    el('h3', { text: 'Manifest history' }),
    el('p', { class: 'history-summary', 'data-history-summary': 'true', text: historySentence(steps) }),
    el('p', { class: 'hint history-notes', text: `${notes.join(' · ')}.` }),
    truncated ? el('p', { class: 'message info history-truncated', 'data-history-truncated': 'true',
      text: 'The history is longer than this service reads: it was cut short, so the oldest steps may be missing.' }) : null,
    el('ol', { class: 'timeline', 'data-history': 'true' }, items));
}

/**
 * Content Credentials recovered from the manifest repository for an upload that lost them:
 * who signed the original and what it claims, validated against the signed original, and how
 * the upload differs. Null when there is nothing recovered.
 */
export function recoveredSection(report) {
  const r = report?.recovered;
  if (!r || typeof r !== 'object' || !r.provenance) return null;
  const p = r.provenance;
  const valid = p.state === 'trusted' || p.state === 'valid_untrusted';
  const h = p.hallmark;
  return el('section', { class: 'recovered', 'data-recovered': p.state },
    el('h3', { text: 'Recovered Content Credentials' }),
    el('p', {},
      el('span', { class: `badge ${p.state === 'trusted' ? 'good' : valid ? 'warn' : 'bad'}`,
        text: p.state === 'trusted' ? 'Recovered · trusted' : valid ? 'Recovered · untrusted signer' : 'Recovered · not valid' }),
      ' ',
      `This image's Content Credentials were found in Hallmark's manifest repository and checked against the signed original${valid ? '' : ', where they did not validate'}.`),
    el('p', { class: 'upload-differs', 'data-upload-differs': '' },
      `The uploaded file itself differs from the signed original: ${clip(r.upload_differs, 300) || 'it is a changed copy'}.`),
    kv([
      ['Manifest', mono(clip(r.manifest_id, 120))],
      ['Signed by', clip(p.signer?.common_name, 120)],
      ['Signed at', p.signer?.time ? formatTime(p.signer.time) : null],
      ['Declares', p.digital_source_type ? sourceTypeWords(p.digital_source_type) : null],
      ['Hallmark record', h?.record_id ? recordLink(h.record_id) : null],
      ['Model', h ? `${clip(h.model, 80)} (version ${clip(String(h.model_version), 40)})` : null],
    ]));
}
