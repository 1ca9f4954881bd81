// The verify page and the moderator console in headless Chromium (Debian's), driven by
// playwright-core. Run by tests/browser.rs against a running `hallmark serve`; everything it needs
// comes in the environment:
//   HALLMARK_BASE_URL, HALLMARK_MODERATOR_KEY, HALLMARK_GENERATOR_KEY, HALLMARK_SCREENSHOTS (dir),
//   HALLMARK_WORK_DIR (scratch dir, holding other.jpg and tampered.jpg made by c2pa-python),
//   HALLMARK_NODE_MODULES (where scripts/setup.sh installed playwright-core), HALLMARK_CHROMIUM.
// Each step asserts on visible text and leaves a screenshot; a failing step leaves FAILED-<step>.png.

import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (this script is run by tests/browser.rs)`);
  return value;
};

const BASE = env('HALLMARK_BASE_URL');
const MODERATOR_KEY = env('HALLMARK_MODERATOR_KEY');
const GENERATOR_KEY = env('HALLMARK_GENERATOR_KEY');
const SHOTS = env('HALLMARK_SCREENSHOTS');
const WORK = env('HALLMARK_WORK_DIR');
const require = createRequire(path.join(env('HALLMARK_NODE_MODULES'), 'noop.js'));
const { chromium } = require('playwright-core');

fs.mkdirSync(SHOTS, { recursive: true });
const TIMEOUT = 60_000;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'hallmark-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.HALLMARK_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  viewport: { width: 1280, height: 900 },
  acceptDownloads: true,
  locale: 'en-GB',
  timezoneId: 'UTC',
});
context.setDefaultTimeout(TIMEOUT);

const consoleErrors = [];
let current = null;
function watch(page) {
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(`${page.url()}: ${msg.text()}`); });
  page.on('pageerror', (error) => consoleErrors.push(`${page.url()}: ${error.message}`));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function step(name, page, body) {
  current = { name, page };
  const started = Date.now();
  await body();
  await shot(page, name);
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

/** Text of the locator, for assertion messages. */
const textOf = async (locator) => (await locator.innerText()).replace(/\s+/g, ' ').trim();

async function expectText(locator, ...needles) {
  await locator.first().waitFor({ state: 'visible' });
  for (const needle of needles) {
    await locator.filter({ hasText: needle }).first().waitFor({ state: 'visible' }).catch(async () => {
      assert.fail(`expected ${JSON.stringify(needle)} in: ${await textOf(locator.first())}`);
    });
  }
}

let failed = false;
try {
  const files = {
    signed: path.join(WORK, 'signed.png'),
    stripped: path.join(WORK, 'stripped.jpg'),
    other: path.join(WORK, 'other.jpg'), // made by c2pa-python (tests/fixtures)
    tampered: path.join(WORK, 'tampered.jpg'),
    nested: path.join(WORK, 'nested.jpg'), // 50 nested edits over an AI-declared original
    small: path.join(WORK, 'small.png'), // the signed image at 16x16, for upscaling
    enhanced: path.join(WORK, 'enhanced.png'), // the signed image inpainted by the console
    text: path.join(WORK, 'notes.txt'),
  };
  fs.writeFileSync(files.text, 'This is a text file, not an image.\n');
  let imageId = null;

  // ----- console: a wrong key is refused, the generator key generates ------------------------
  const gen = watch(await context.newPage());
  await step('01-console-wrong-key', gen, async () => {
    await gen.goto(`${BASE}/console`);
    await gen.getByLabel('API key').fill(`hm_${'0'.repeat(64)}`);
    await gen.getByRole('button', { name: 'Use this key' }).click();
    await expectText(gen.locator('#key-message'), 'This key was refused', 'invalid_api_key');
    assert.ok(await gen.locator('#check-panel').isHidden(), 'no panel behind a refused key');
    assert.equal(await gen.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
  });

  await step('02-console-generate', gen, async () => {
    await gen.getByLabel('API key').fill(GENERATOR_KEY);
    await gen.getByLabel('API key').press('Enter');
    await expectText(gen.locator('#key-bar'), 'Can generate');
    assert.ok(await gen.locator('#check-panel').isHidden(), 'a generator key does not check images');
    assert.equal(await gen.evaluate(() => sessionStorage.getItem('hallmark.apiKey')), GENERATOR_KEY);
    assert.equal(await gen.evaluate(() => localStorage.length), 0, 'the key never goes to localStorage');
    await gen.getByLabel('Count').fill('3');
    await gen.getByLabel('Seed', { exact: true }).fill('7');
    await gen.getByRole('button', { name: 'Generate' }).click();
    await expectText(gen.locator('#generate-message'), 'Generated 3 signed images', 'seed 7');
    await gen.locator('#generate-results .thumb img').nth(2).waitFor();
    const first = gen.locator('#generate-results .thumb').first();
    imageId = await first.getAttribute('data-image');
    const [download] = await Promise.all([
      gen.waitForEvent('download'),
      first.getByRole('link', { name: 'Download' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `hallmark-${imageId}.png`);
    await download.saveAs(files.signed);
    const bytes = fs.readFileSync(files.signed);
    assert.ok(bytes.subarray(1, 4).toString() === 'PNG', 'the download is a PNG');
    assert.ok(bytes.includes(Buffer.from('c2pa')), 'the download carries its C2PA manifest');
  });

  // The same image with its metadata stripped and re-encoded as JPEG, by the browser's canvas.
  const jpeg = await gen.evaluate(async (base64) => {
    const png = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([png], { type: 'image/png' }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    canvas.getContext('2d').drawImage(bitmap, 0, 0);
    const blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
    const out = new Uint8Array(await blob.arrayBuffer());
    let text = '';
    for (const byte of out) text += String.fromCharCode(byte);
    return btoa(text);
  }, fs.readFileSync(files.signed).toString('base64'));
  fs.writeFileSync(files.stripped, Buffer.from(jpeg, 'base64'));
  assert.ok(!fs.readFileSync(files.stripped).includes(Buffer.from('c2pa')), 'the JPEG copy has no manifest');

  // ----- the public verify page ---------------------------------------------------------------
  const pub = watch(await context.newPage());
  const result = pub.locator('#result');
  await step('03-verify-trusted', pub, async () => {
    await pub.goto(`${BASE}/`);
    await pub.locator('#file').setInputFiles(files.signed);
    await expectText(result, 'Result for signed.png', 'Trusted Content Credentials', 'Matched a Hallmark record',
      'the exact same file', 'AI-generated (trained algorithmic media)', imageId);
    await result.locator('figure img').waitFor();
    assert.ok(await result.locator('figure img').evaluate((img) => img.complete && img.naturalWidth > 0), 'the image is shown');
  });

  await step('04-verify-stripped-jpeg', pub, async () => {
    await pub.locator('#file').setInputFiles(files.stripped);
    await expectText(result, 'Result for stripped.jpg', 'No Content Credentials', 'Matched a Hallmark record',
      'Hamming distance', imageId);
    assert.equal(await result.locator('[data-registry]').getAttribute('data-registry'), 'phash');
    // Durable Content Credentials: the original's manifest, from the manifest repository.
    await expectText(result.locator('[data-recovered]'), 'Recovered Content Credentials', 'Recovered · trusted',
      'differs from the signed original', 'urn:c2pa:');
    assert.equal(await result.locator('[data-recovered]').getAttribute('data-recovered'), 'trusted');
  });

  await step('05-verify-other-producer', pub, async () => {
    await pub.locator('#file').setInputFiles(files.other);
    await expectText(result, 'Result for other.jpg', 'Signed by an untrusted signer', 'Who signed it',
      'No Hallmark record matches this image');
    const signer = await textOf(result.locator('dl.kv dd').first());
    assert.ok(signer && signer !== '—', `the signer is named: ${signer}`);
    // The whole history as a timeline: the AI-created original, the edit, the published file.
    await expectText(result.locator('[data-history-summary]'), 'Created', '(AI: trainedAlgorithmicMedia)',
      'cropped, colour adjusted');
    assert.equal(await result.locator('ol.timeline[data-history] > li[data-step]').count(), 3);
    await expectText(result.locator('.step-items'), 'Placed: untrusted.jpg');
    await expectText(result, 'declares AI generation', 'so the declaration does not count');
  });

  await step('05b-verify-50-nested-edits', pub, async () => {
    await pub.locator('#file').setInputFiles(files.nested);
    await expectText(result, 'Result for nested.jpg', 'Manifest history', 'more steps');
    // 51 manifests: the timeline draws both ends and says how many steps it skipped.
    const steps = await result.locator('ol.timeline[data-history] > li[data-step]').count();
    assert.ok(steps >= 2 && steps <= 30, `a bounded timeline: ${steps} steps drawn`);
    await expectText(result.locator('li[data-step-gap]'), 'more steps');
    await expectText(result.locator('[data-history-summary]'), '(AI: trainedAlgorithmicMedia)');
  });

  await step('06-verify-tampered', pub, async () => {
    await pub.locator('#file').setInputFiles(files.tampered);
    await expectText(result, 'Result for tampered.jpg', 'Tampered', 'assertion.dataHash.mismatch');
  });

  await step('07-verify-not-an-image', pub, async () => {
    await pub.locator('#file').setInputFiles(files.text);
    await expectText(result, 'Could not check notes.txt', 'unsupported_media_type');
  });

  await step('08-verify-record-lookup', pub, async () => {
    await pub.getByLabel("Paste a Hallmark record id or a file's SHA-256").fill(imageId);
    await pub.getByRole('button', { name: 'Look up' }).click();
    await expectText(result, 'Generated by Hallmark', 'Valid (Ed25519)', imageId);
    // The page checks the record's transparency-log proof itself (src/web/tlog.js).
    await expectText(result.locator('[data-log]'), 'Proof verified', "In Hallmark's public log at index", 'checkpoint of');
    assert.equal(await result.locator('[data-log]').getAttribute('data-log'), 'included');
    // ... and its checker refuses what does not prove inclusion.
    const verdicts = await pub.evaluate(async (id) => {
      const tlog = await import('/assets/tlog.js');
      const text = (path) => fetch(path).then((r) => r.text());
      const [recordText, proof, vkey] = await Promise.all([
        text(`/v1/records/${id}`), text(`/v1/records/${id}/proof`), text('/log/key')]);
      const record = JSON.parse(recordText);
      const check = async (r, p, k = vkey) => (await tlog.checkProof(r, p, k)).state;
      const [head, note] = [proof.slice(0, proof.indexOf('\n\n')), proof.slice(proof.indexOf('\n\n') + 2)];
      const noteLines = note.split('\n');
      noteLines[1] = String(Number(noteLines[1]) + 1);
      const index = Number(/index (\d+)/.exec(head)[1]);
      return {
        genuine: await check(record, proof),
        otherSeed: await check({ ...record, seed: String(BigInt(record.seed) + 1n) }, proof),
        otherIndex: await check(record, proof.replace(`index ${index}\n`, `index ${index + 1}\n`)),
        editedCheckpoint: await check(record, `${head}\n\n${noteLines.join('\n')}`),
        otherKey: await check(record, proof, vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')),
      };
    }, imageId);
    assert.deepEqual(verdicts, {
      genuine: 'included', otherSeed: 'invalid', otherIndex: 'invalid', editedCheckpoint: 'invalid', otherKey: 'invalid',
    });
  });

  // ----- the moderator console ------------------------------------------------------------------
  const mod = watch(await context.newPage());
  await step('09-console-batch', mod, async () => {
    await mod.goto(`${BASE}/console`);
    await mod.getByLabel('API key').fill(MODERATOR_KEY);
    await mod.getByRole('button', { name: 'Use this key' }).click();
    await expectText(mod.locator('#key-bar'), 'Can check images');
    assert.ok(await mod.locator('#generate-panel').isHidden(), 'a moderator key does not generate');
    await mod.locator('#check-files').setInputFiles([files.signed, files.stripped, files.other, files.text]);
    await expectText(mod.locator('#check-status'), 'Checked 4 files; 1 rejected');
    const cards = mod.locator('#check-results .card');
    assert.equal(await cards.count(), 4);
    const card = (name) => mod.locator(`#check-results .card[data-file="${name}"]`);
    await expectText(card('signed.png'), 'Hallmark-generated', 'Trusted', 'Detector', 'against threshold');
    await expectText(card('stripped.jpg'), 'Hallmark-generated', 'Hamming distance');
    await expectText(card('other.jpg'), 'Untrusted signer', 'Manifest history', '(AI: trainedAlgorithmicMedia)');
    await expectText(card('notes.txt'), 'Rejected', 'unsupported_media_type');
    for (const name of ['signed.png', 'stripped.jpg']) {
      const original = card(name).locator(`[data-original="${imageId}"] img`);
      await original.waitFor();
      assert.ok(await original.evaluate((img) => img.complete && img.naturalWidth > 0), `${name}: the original is shown`);
    }
  });

  await step('10-console-history', mod, async () => {
    const rows = mod.locator('#history-rows tr[data-check]');
    await rows.nth(2).waitFor();
    const all = await rows.count();
    assert.ok(all >= 3, `three checks listed, got ${all}`);
    await expectText(mod.locator('#history-rows'), 'signed.png', 'stripped.jpg', 'other.jpg');
  });

  await step('11-console-history-filter', mod, async () => {
    await mod.getByLabel('Verdict').selectOption('hallmark_generated');
    await mod.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#history-rows tr[data-check]')];
      return rows.length >= 2 && rows.every((row) => row.dataset.verdict === 'hallmark_generated');
    });
    const text = await textOf(mod.locator('#history-rows'));
    assert.ok(!text.includes('other.jpg'), `other.jpg is filtered out: ${text}`);
    await mod.locator('#history-rows tr[data-check]').first().getByRole('button', { name: /Details/ }).click();
    await expectText(mod.locator('#history-detail'), 'Hallmark-generated', 'Matched a Hallmark record');
  });

  await step('11b-console-history-pages', mod, async () => {
    // Nine more checks straight through the API (our original, fetched as moderators may), so
    // the history runs past one page of ten.
    await mod.evaluate(async ({ key, id }) => {
      const auth = { Authorization: `Bearer ${key}` };
      const bytes = await (await fetch(`/v1/images/${id}`, { headers: auth })).arrayBuffer();
      for (let i = 0; i < 9; i += 1) {
        const response = await fetch('/v1/verify', {
          method: 'POST',
          headers: { ...auth, 'Content-Type': 'application/octet-stream' },
          body: bytes,
        });
        if (!response.ok) throw new Error(`verify answered ${response.status}`);
      }
    }, { key: MODERATOR_KEY, id: imageId });
    await mod.getByLabel('Verdict').selectOption('');
    const rows = mod.locator('#history-rows tr[data-check]');
    const ids = async () => rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.check));
    await mod.waitForFunction(() => document.querySelectorAll('#history-rows tr[data-check]').length === 10);
    await expectText(mod.locator('#history-page'), 'Page 1');
    assert.ok(await mod.locator('#history-newer').isDisabled(), 'no newer page on page 1');
    const first = await ids();
    const firstText = await textOf(mod.locator('#history-rows'));

    await mod.locator('#history-older').click();
    await expectText(mod.locator('#history-page'), 'Page 2');
    await mod.waitForFunction(() => document.querySelectorAll('#history-rows tr[data-check]').length === 2);
    const second = await ids();
    assert.ok(second.every((id) => !first.includes(id)), 'page 2 repeats nothing from page 1');
    assert.ok(await mod.locator('#history-older').isDisabled(), 'twelve checks make two pages');
    const both = firstText + (await textOf(mod.locator('#history-rows')));
    for (const name of ['signed.png', 'stripped.jpg', 'other.jpg']) {
      assert.ok(both.includes(name), `${name} is on one of the pages`);
    }

    await mod.locator('#history-newer').click();
    await expectText(mod.locator('#history-page'), 'Page 1');
    await mod.waitForFunction((want) => {
      const got = [...document.querySelectorAll('#history-rows tr[data-check]')].map((tr) => tr.dataset.check);
      return got.length === want.length && got.every((id, i) => id === want[i]);
    }, first);
  });

  await step('12-console-expired-key', mod, async () => {
    // A key that stops working mid-session (revoked, expired) sends the moderator back to the form.
    await mod.evaluate(() => sessionStorage.setItem('hallmark.apiKey', `hm_${'f'.repeat(64)}`));
    await mod.reload();
    await expectText(mod.locator('#key-message'), 'refused', 'invalid_api_key');
    assert.equal(await mod.evaluate(() => sessionStorage.length), 0);
  });

  // ----- enhancement: the console's panel, then the chain on the verify page ---------------------
  const sha256Of = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const parentSha = sha256Of(files.signed);
  const enhance = gen.locator('#enhance-panel');
  const enhanceCard = (op) => enhance.locator(`#enhance-result .card[data-operation="${op}"]`);
  /** Both pictures of a card are drawn; their natural widths, before and after. */
  const pictureWidths = async (card) => {
    const widths = [];
    for (const which of ['[data-before] img', '[data-after] img']) {
      const img = card.locator(which);
      await img.waitFor();
      await gen.waitForFunction((node) => node.complete && node.naturalWidth > 0, await img.elementHandle());
      widths.push(await img.evaluate((node) => node.naturalWidth));
    }
    return widths;
  };
  let enhancedId = null;

  await step('13-enhance-console-inpaint', gen, async () => {
    await expectText(gen.locator('#key-bar'), 'Can enhance');
    await gen.locator('#enhance-file').setInputFiles(files.signed);
    await expectText(enhance.locator('#enhance-stage-caption'), 'signed.png · 32×32 pixels, shown 8× larger');
    await gen.getByLabel('Operation').selectOption('inpaint');
    // Drag over the enlarged picture from pixel (8, 8) to pixel (19, 19).
    const box = await gen.locator('#enhance-canvas').boundingBox();
    const at = (x, y) => [box.x + 1 + ((x + 0.5) * (box.width - 2)) / 32, box.y + 1 + ((y + 0.5) * (box.height - 2)) / 32];
    await gen.mouse.move(...at(8, 8));
    await gen.mouse.down();
    await gen.mouse.move(...at(19, 19), { steps: 6 });
    await gen.mouse.up();
    assert.equal(await gen.getByLabel('Region (x,y,w,h)').inputValue(), '8,8,12,12', 'the drag sets the region');
    await gen.getByLabel('Enhancement seed').fill('3');
    await gen.getByRole('button', { name: 'Enhance' }).click();
    await expectText(gen.locator('#enhance-message'), 'Enhanced with', 'seed 3', 'region 8,8 12x12 inpainted');
    const card = enhanceCard('inpaint');
    await expectText(card, 'Inpaint: region 8,8 12x12 inpainted', 'Trusted Content Credentials', 'Signed by Hallmark',
      'Registered: Hallmark record', 'Enhanced by Hallmark (inpaint) from an upload sha256', parentSha);
    assert.equal(await card.locator('[data-enhance-verify]').getAttribute('data-enhance-verify'), 'trusted');
    assert.deepEqual(await pictureWidths(card), [32, 32]);
    enhancedId = await card.getAttribute('data-enhancement');
    const [download] = await Promise.all([
      gen.waitForEvent('download'),
      card.getByRole('link', { name: 'Download' }).click(),
    ]);
    await download.saveAs(files.enhanced);
    const shown = await card.locator('[data-result-sha256]').getAttribute('data-result-sha256');
    assert.equal(shown, sha256Of(files.enhanced), 'the SHA-256 shown is the downloaded file\'s');
    await expectText(card, enhancedId, shown);
  });

  await step('14-enhance-console-upscale', gen, async () => {
    // The signed picture is 32x32: upscaling it is refused, with the code, in the panel.
    await gen.getByLabel('Operation').selectOption('upscale');
    await gen.getByLabel('Factor').selectOption('2');
    await gen.getByRole('button', { name: 'Enhance' }).click();
    await expectText(gen.locator('#enhance-message'), 'The enhancement failed.', 'out_of_domain');
    // The same picture at 16x16, by the browser's canvas.
    const small = await gen.evaluate(async (base64) => {
      const png = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      const bitmap = await createImageBitmap(new Blob([png], { type: 'image/png' }), { resizeWidth: 16, resizeHeight: 16, resizeQuality: 'high' });
      const canvas = new OffscreenCanvas(16, 16);
      canvas.getContext('2d').drawImage(bitmap, 0, 0);
      const out = new Uint8Array(await (await canvas.convertToBlob({ type: 'image/png' })).arrayBuffer());
      let text = '';
      for (const byte of out) text += String.fromCharCode(byte);
      return btoa(text);
    }, fs.readFileSync(files.signed).toString('base64'));
    fs.writeFileSync(files.small, Buffer.from(small, 'base64'));
    await gen.locator('#enhance-file').setInputFiles(files.small);
    await expectText(enhance.locator('#enhance-stage-caption'), 'small.png · 16×16 pixels, shown 16× larger');
    await gen.getByLabel('Enhancement seed').fill('');
    await gen.getByRole('button', { name: 'Enhance' }).click();
    const card = enhanceCard('upscale');
    await expectText(card, 'Upscale: upscaled 2x', 'Trusted Content Credentials', 'Signed by Hallmark',
      'Enhanced by Hallmark (upscale) from an upload sha256', sha256Of(files.small));
    assert.deepEqual(await pictureWidths(card), [16, 32]);
    const [before, after] = await Promise.all(['[data-before] img', '[data-after] img']
      .map((which) => card.locator(which).boundingBox()));
    assert.equal(Math.round(before.width), Math.round(after.width), 'before and after are shown at one size');
    assert.equal(await card.locator('[data-after] img').evaluate((img) => getComputedStyle(img).imageRendering), 'pixelated');
  });

  await step('15-enhance-verify-chain', pub, async () => {
    await pub.goto(`${BASE}/`);
    await pub.locator('#file').setInputFiles(files.enhanced);
    await expectText(result, 'Result for enhanced.png', 'Trusted Content Credentials', 'Matched a Hallmark record', enhancedId);
    const chain = result.locator('[data-chain]');
    await expectText(chain, 'Enhanced by Hallmark (inpaint) from an upload sha256', parentSha, 'region 8,8 12x12 inpainted');
    assert.equal(await chain.getAttribute('data-parent'), parentSha);
    // The manifest history: the generated original, then Hallmark's edit of it.
    await expectText(result.locator('[data-history-summary]'), 'Created', 'Edited');
  });

  await step('16-enhance-verify-parent', pub, async () => {
    await result.locator('[data-chain]').getByRole('link', { name: "Look up the upload's record" }).click();
    await pub.waitForURL(`${BASE}/?sha256=${parentSha}`);
    await expectText(result, 'Generated by Hallmark', imageId);
  });

  await step('17-enhance-verify-record', pub, async () => {
    await pub.getByLabel("Paste a Hallmark record id or a file's SHA-256").fill(enhancedId);
    await pub.getByRole('button', { name: 'Look up' }).click();
    await expectText(result, 'Enhanced by Hallmark', 'from an upload (inpaint)', enhancedId);
    await expectText(result.locator('[data-chain]'), 'Enhanced by Hallmark (inpaint) from an upload sha256', parentSha);
  });

  assert.deepEqual(consoleErrors.filter((line) => !/status of 4\d\d/.test(line)), [], 'no script errors in the pages');
} catch (error) {
  failed = true;
  console.error(`FAIL ${current?.name ?? 'setup'}: ${error.stack || error}`);
  if (current?.page) await shot(current.page, `FAILED-${current.name}`).catch(() => {});
  if (consoleErrors.length) console.error(`browser console errors:\n${consoleErrors.join('\n')}`);
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
