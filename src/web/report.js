// What a VerifyReport and a record say, in plain words: shared by the verify page and the console.

import { el, formatTime, shortHash } from './api.js';

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

function kv(pairs) {
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
      ['Record signature', r.signature_valid ? 'Valid (Ed25519)' : 'NOT valid: the record was altered'],
    ]));
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
export function recordFacts(record) {
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
    ['Signing key', mono(record.signing_key_id)],
    ['Record signature', record.signature_valid
      ? el('span', { class: 'badge good', text: 'Valid (Ed25519)' })
      : el('span', { class: 'badge bad', text: 'Not valid: the record was altered' })],
  ]);
}
