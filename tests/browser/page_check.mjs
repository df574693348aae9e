// Loads one page in Debian's headless Chromium through Playwright and reports, as one JSON
// object on stdout, what a user's browser would have seen:
//   {"url", "title", "console_errors": [...], "page_errors": [...], "failed_requests": [...],
//    "external_requests": [...], "result": <value of --eval>, "screenshot": path}
// A request counts as external when its host is neither 127.0.0.1/localhost nor a file: or
// data: URL, so a test can prove a page works offline. The caller asserts on the report;
// this script exits non-zero only when the page could not be loaded or --eval threw.
// Pages should declare an icon (`<link rel="icon" href="data:,">`): otherwise Chromium asks
// the server for /favicon.ico and a 404 there is reported as a console error.
//
// Usage: node page_check.mjs URL [--eval JS] [--wait-for JS] [--screenshot PNG]
//                                 [--header NAME:VALUE]... [--timeout-ms N]
//   --wait-for JS   an expression polled until truthy before --eval runs (e.g. the chart
//                   having drawn its points); default: the load event only.
//   --eval JS       an expression evaluated in the page; its JSON value becomes "result".
import { chromium } from 'playwright-core';

function parseArgs(argv) {
  const opts = { url: null, evalJs: null, waitFor: null, screenshot: null, headers: {}, timeoutMs: 60000 };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--eval') opts.evalJs = next();
    else if (a === '--wait-for') opts.waitFor = next();
    else if (a === '--screenshot') opts.screenshot = next();
    else if (a === '--timeout-ms') opts.timeoutMs = Number(next());
    else if (a === '--header') {
      const h = next();
      const colon = h.indexOf(':');
      if (colon <= 0) throw new Error(`--header wants NAME:VALUE, got ${h}`);
      opts.headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else if (opts.url === null) opts.url = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (opts.url === null) throw new Error('usage: page_check.mjs URL [--eval JS] [--wait-for JS] [--screenshot PNG]');
  return opts;
}

function isLocal(url) {
  if (url.startsWith('file:') || url.startsWith('data:') || url.startsWith('blob:') || url === 'about:blank') return true;
  try {
    const host = new URL(url).hostname;
    return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
  } catch {
    return false;
  }
}

const opts = parseArgs(process.argv.slice(2));
// The flags keep Chromium from reaching out to Google's services, which a closed network
// refuses (each refusal would otherwise show up as noise); --no-sandbox because CI runs as root.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const report = { url: opts.url, console_errors: [], page_errors: [], failed_requests: [], external_requests: [] };
let status = 0;
try {
  const context = await browser.newContext({ extraHTTPHeaders: opts.headers });
  const page = await context.newPage();
  page.setDefaultTimeout(opts.timeoutMs);
  page.on('console', (m) => { if (m.type() === 'error') report.console_errors.push(m.text()); });
  page.on('pageerror', (e) => report.page_errors.push(String(e)));
  page.on('requestfailed', (r) => report.failed_requests.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on('request', (r) => { if (!isLocal(r.url())) report.external_requests.push(r.url()); });
  page.on('response', (r) => { if (r.status() >= 400) report.failed_requests.push(`${r.url()}: HTTP ${r.status()}`); });
  const response = await page.goto(opts.url, { waitUntil: 'load' });
  report.http_status = response ? response.status() : null;
  if (opts.waitFor) await page.waitForFunction(opts.waitFor, null, { timeout: opts.timeoutMs });
  report.title = await page.title();
  if (opts.evalJs) report.result = await page.evaluate(opts.evalJs);
  if (opts.screenshot) {
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    report.screenshot = opts.screenshot;
  }
} catch (e) {
  report.error = String(e && e.message ? e.message : e);
  status = 1;
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(status);
