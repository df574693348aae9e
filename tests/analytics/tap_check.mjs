// Reads a TAP file with tap-parser, the reference TAP 14 parser (npm), and prints what it
// understood as JSON: the version line, the plan, the counts, every failure with its YAML
// diagnostics, the skips with their reasons, and any line it could not place ("extra")
// or complained about. Usage: node tap_check.mjs FILE
import { readFileSync } from 'node:fs';
import { Parser } from 'tap-parser';

const text = readFileSync(process.argv[2], 'utf8');
const seen = { version: null, extra: [], complaints: [] };
const p = new Parser({ strict: true }, (r) => {
  const point = (t) => ({ id: t.id, name: t.name, diag: t.diag ?? null });
  process.stdout.write(JSON.stringify({
    version: seen.version,
    ok: r.ok,
    plan: { start: r.plan.start, end: r.plan.end },
    count: r.count,
    pass: r.pass,
    fail: r.fail,
    skip: r.skip,
    bailout: r.bailout,
    failures: r.failures.filter((f) => !f.tapError).map(point),
    errors: r.failures.filter((f) => f.tapError).map((f) => `${f.tapError}: ${JSON.stringify(f.data ?? '')}`),
    skips: r.skips.map((s) => ({ id: s.id, name: s.name, reason: s.skip })),
    extra: seen.extra,
  }) + '\n');
});
p.on('version', (v) => { seen.version = v; });
p.on('extra', (line) => { seen.extra.push(line); });
p.end(text);
