// Loads a Chrome trace with the trace engine of Chrome DevTools' Performance panel (npm
// @paulirish/trace_engine) and prints what it built:
//   slices N     complete events placed in its per-thread trees
//   threads N    threads it found
//   named N      of those, the ones with the name of their thread_name metadata
//   node devtools_load.mjs TRACE.json
import fs from 'node:fs';
import * as Trace from '@paulirish/trace_engine';

// The engine runs in a page; in Node it needs DOMRect, as its README says.
globalThis.DOMRect ??= class DOMRect {
  constructor(x = 0, y = 0, width = 0, height = 0) { Object.assign(this, {x, y, width, height}); }
};

const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const model = Trace.TraceModel.Model.createWithAllHandlers();
await model.parse(doc.traceEvents);
const renderer = model.parsedTrace().data.Renderer;
let threads = 0, named = 0;
for (const p of renderer.processes.values()) {
  for (const [tid, t] of p.threads) {
    ++threads;
    if (t.name === `thread ${tid}`) ++named;
  }
}
console.log(`slices ${renderer.entryToNode.size}\nthreads ${threads}\nnamed ${named}`);
