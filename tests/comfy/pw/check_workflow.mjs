// Load a UI-format workflow into the ComfyUI front end in headless Debian chromium, optionally
// queue it, take a screenshot, and print one JSON result line on stdout.
//
// usage: node check_workflow.mjs --url URL --workflow FILE.json --screenshot OUT.png
//                                [--queue] [--timeout-ms 120000]
//                                [--probe-js FILE] [--after-js FILE] [--clip-screenshot OUT.png]
//                                [--load-api] [--fit-view] [--viewport 1400x900]
// --load-api: accept an API-format workflow and load it as the front end loads a dropped API file
//   (app.loadApiJson); queueing then goes through the front end's own graph-to-prompt conversion.
// --probe-js: a file holding a page-side function `() => value`; it is called after loading, at every
//   history poll while the prompt runs and at the end; each change of its JSON value is recorded in
//   "probes" as {t_ms, phase, value} (phase: loaded | running | finished).
// --after-js: a file holding a page-side `async () => value`, awaited after the run and before the
//   screenshot (e.g. change a widget and read back what an extension drew); its value is "after".
//   If that value has a "clip" {x, y, width, height} (CSS pixels) and --clip-screenshot is given, that
//   region is saved there too (before the full screenshot).
// --fit-view: fit the whole graph in view before the full screenshot.
// exit code: 0 when the check ran (read "ok" in the JSON), 2 on bad arguments, 1 on a crash.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Console errors a bare ComfyUI 0.3.75 (front end 1.32.9) logs on every fresh, offline start;
// anything else fails the check.
const BENIGN = [
  // first-run user files that do not exist yet
  { text: /Failed to load resource.*404/, url: /\/(api\/userdata\b|user\.css$|favicon\.ico$)/ },
  // front end 1.32.9 sets an undeclared setting on start-up (onChange reads setting.id)
  { text: /Cannot read properties of undefined \(reading 'id'\)\s+at onChange/ },
];

function isBenign(msg, origin) {
  // Requests to outside hosts (api.comfy.org...) fail offline; the front end carries on.
  if (/^Failed to load resource/.test(msg.text) && msg.url && !msg.url.startsWith(origin)) return true;
  return BENIGN.some(b => b.text.test(msg.text) && (!b.url || b.url.test(msg.url || '')));
}

async function fetchJson(url) {
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}

// Visible PrimeVue toasts as "<severity>: <text>" (the front end's alerts and errors).
async function collectToasts(page) {
  return page.evaluate(() => [...document.querySelectorAll('.p-toast-message')].map(el => {
    const severity = [...el.classList].find(c => /^p-toast-message-(success|info|warn|error|secondary|contrast)$/.test(c));
    return `${severity ? severity.replace('p-toast-message-', '') : 'unknown'}: ${el.innerText.replace(/\s+/g, ' ').trim()}`;
  }));
}

async function waitForHistory(origin, promptId, deadline, onPoll = async () => {}) {
  while (Date.now() < deadline) {
    await onPoll();
    const { status, body } = await fetchJson(`${origin}/api/history/${promptId}`);
    const entry = status === 200 ? body[promptId] : undefined;
    const st = entry?.status;
    if (st && (st.completed || st.status_str === 'error')) return entry;
    await new Promise(r => setTimeout(r, 200));
  }
  return null;
}

async function main() {
  const { values: a } = parseArgs({ options: {
    url: { type: 'string' }, workflow: { type: 'string' }, screenshot: { type: 'string' },
    queue: { type: 'boolean', default: false }, 'timeout-ms': { type: 'string', default: '120000' },
    viewport: { type: 'string', default: '1400x900' }, 'load-api': { type: 'boolean', default: false }, 'fit-view': { type: 'boolean', default: false }, 'probe-js': { type: 'string' }, 'after-js': { type: 'string' }, 'clip-screenshot': { type: 'string' },
  } });
  if (!a.url || !a.workflow || !a.screenshot) {
    console.error('usage: node check_workflow.mjs --url URL --workflow FILE.json --screenshot OUT.png [--queue] [--timeout-ms N]');
    return 2;
  }
  const origin = new URL(a.url).origin;
  const deadline = Date.now() + Number(a['timeout-ms']);
  const workflow = JSON.parse(fs.readFileSync(a.workflow, 'utf8'));
  const result = { ok: false, url: a.url, workflow: a.workflow, screenshot: a.screenshot, error: null,
    console_errors: [], ignored_console_errors: [], toasts: [], missing_node_types: [], queued: a.queue,
    prompt_id: null, prompt_error: null, status: null, outputs: null, timings_ms: {}, probes: [], after: null };
  const probeSrc = a['probe-js'] ? fs.readFileSync(a['probe-js'], 'utf8') : null;
  const afterSrc = a['after-js'] ? fs.readFileSync(a['after-js'], 'utf8') : null;
  const isApi = !Array.isArray(workflow.nodes);
  if (isApi && !a['load-api']) {
    // An API-format file ({id: {class_type, inputs}}): the front end rejects it with a toast and
    // shows an empty graph, so there is nothing to check in the browser.
    result.error = 'not a UI-format workflow (no "nodes" list); API-format files cannot be loaded by app.loadGraphData';
    console.log(JSON.stringify(result));
    return 0;
  }
  const t0 = Date.now();
  const lap = name => { result.timings_ms[name] = Date.now() - t0; };

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gptimg-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS,
    viewport: { width: Number(a.viewport.split('x')[0]), height: Number(a.viewport.split('x')[1]) },
  });
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage();
    page.on('console', m => {
      if (m.type() !== 'error') return;
      const msg = { text: m.text(), url: m.location()?.url || '' };
      (isBenign(msg, origin) ? result.ignored_console_errors : result.console_errors).push(msg);
    });
    page.on('pageerror', e => result.console_errors.push({ text: `uncaught: ${e.stack || e.message}`, url: '' }));
    lap('browser');

    // Screenshots show the graph: no first-run template browser, no minimap, node text drawn at any
    // zoom (settings on the server), and no "Nodes 2.0" banner (dismissed in local storage).
    await fetch(`${origin}/api/settings`, { method: 'POST', body: JSON.stringify({
      'Comfy.TutorialCompleted': true, 'Comfy.Minimap.Visible': false,
      'LiteGraph.Canvas.MinFontSizeForLOD': 1 }) });
    await ctx.addInitScript(() => localStorage.setItem('vueNodesBannerDismissed', 'true'));
    await page.goto(a.url, { waitUntil: 'load' });
    await page.waitForFunction(() => window.app?.graph && window.app.vueAppReady, null,
      { timeout: Math.max(1000, deadline - Date.now()) });
    lap('app_ready');

    const types = [...new Set(isApi ? Object.values(workflow).map(n => n.class_type) : workflow.nodes.map(n => n.type))];
    result.missing_node_types = await page.evaluate(async ({ wf, types, name, isApi }) => {
      const missing = types.filter(t => !window.LiteGraph.registered_node_types[t]);
      // API format goes the way of a dropped API-format file (nodes laid out by graph.arrange()).
      if (isApi) await window.app.loadApiJson(wf, name);
      else await window.app.loadGraphData(wf, true, true, name);
      return missing;
    }, { wf: workflow, types, name: path.basename(a.workflow), isApi });
    // Schema problems (e.g. a missing "version") only show as a warning toast, not on the console.
    await page.waitForTimeout(300);
    result.toasts = await collectToasts(page);
    lap('loaded');

    let lastProbe;
    const probe = async phase => {
      if (!probeSrc) return;
      const value = await page.evaluate(src => (0, eval)(`(${src})`)(), probeSrc);
      const json = JSON.stringify(value);
      if (json !== lastProbe) result.probes.push({ t_ms: Date.now() - t0, phase, value });
      lastProbe = json;
    };
    await probe('loaded');

    if (a.queue) {
      const posted = page.waitForResponse(r => r.request().method() === 'POST' && new URL(r.url()).pathname.endsWith('/prompt'),
        { timeout: Math.max(1000, deadline - Date.now()) });
      posted.catch(() => {}); // if queuePrompt throws, report that error rather than this one
      await page.evaluate(() => window.app.queuePrompt(0));
      const resp = await posted;
      const body = await resp.json();
      if (resp.status() !== 200) {
        result.prompt_error = body;
      } else {
        result.prompt_id = body.prompt_id;
        const entry = await waitForHistory(origin, body.prompt_id, deadline, () => probe('running'));
        result.status = entry ? entry.status : { status_str: 'timeout' };
        result.outputs = entry ? entry.outputs : null;
        await page.waitForTimeout(1000); // let output previews render before the screenshot
      }
      lap('finished');
    }
    await probe('finished');
    if (afterSrc) {
      try {
        result.after = await page.evaluate(src => (0, eval)(`(${src})`)(), afterSrc);
      } catch (e) {
        result.error = `--after-js failed: ${e.message}`;
      }
      lap('after');
    }
    result.toasts = [...new Set([...result.toasts, ...await collectToasts(page)])];
    fs.mkdirSync(path.dirname(path.resolve(a.screenshot)), { recursive: true });
    if (a['clip-screenshot'] && result.after?.clip) {
      fs.mkdirSync(path.dirname(path.resolve(a['clip-screenshot'])), { recursive: true });
      await page.screenshot({ path: a['clip-screenshot'], clip: result.after.clip });
    }
    if (a['fit-view']) {
      await page.evaluate(() => window.app.extensionManager.command.execute('Comfy.Canvas.FitView'));
      await page.waitForTimeout(500);
    }
    await page.screenshot({ path: a.screenshot });
    lap('screenshot');
  } finally {
    await ctx.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  result.ok = result.error === null && result.console_errors.length === 0 && result.missing_node_types.length === 0 &&
    !result.toasts.some(t => /^(warn|error)\b/.test(t)) &&
    (!a.queue || (result.prompt_error === null && result.status?.status_str === 'success'));
  console.log(JSON.stringify(result));
  return 0;
}

// Exit only once stdout has drained: on a pipe console.log is asynchronous, and process.exit() right after
// it cut the result line at 64 KiB (a slow run records many progress texts).
const exitAfterFlush = code => process.stdout.write('', () => process.exit(code));
main().then(exitAfterFlush, e => { console.error(e?.stack || e); exitAfterFlush(1); });
