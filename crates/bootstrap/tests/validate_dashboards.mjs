// Type-checks Grafana dashboard JSON files against Grafana's published
// dashboard schema (the `Dashboard` type of npm @grafana/schema, generated from
// Grafana's CUE schema), with the TypeScript compiler: object literals get
// excess-property checks, so unknown or mistyped keys fail.
//
//   node validate_dashboards.mjs NODE_MODULES_DIR FILE.json...
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename, resolve } from 'node:path';

const [modules, ...files] = process.argv.slice(2);
if (!modules || files.length === 0) {
  console.error('usage: validate_dashboards.mjs NODE_MODULES_DIR FILE.json...');
  process.exit(2);
}
const types = resolve(modules, '@grafana/schema/dist/types/raw/dashboard/x/types.gen');
const work = mkdtempSync(join(tmpdir(), 'dashboards-'));
try {
  const sources = files.map((file, i) => {
    const json = readFileSync(file, 'utf8');
    JSON.parse(json); // plain JSON first: a clear error for broken files
    const ts = join(work, `d${i}_${basename(file, '.json').replace(/\W/g, '_')}.ts`);
    writeFileSync(ts, `import type { Dashboard } from ${JSON.stringify(types)};\n` +
      `// ${file}\nexport const dashboard: Dashboard = ${json};\n`);
    return ts;
  });
  execFileSync(resolve(modules, '.bin/tsc'),
    ['--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022', '--module', 'nodenext', ...sources],
    { stdio: 'inherit' });
  console.log(`${files.length} dashboards valid`);
} catch (e) {
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
