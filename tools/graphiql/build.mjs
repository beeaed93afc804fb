// Builds GraphiQL into graph/http/graphiql/static/ from the packages pinned in package-lock.json,
// and records beside the files what went into them: MANIFEST.json (the page's entry files,
// each file's sha256, every bundled package's version and licence) and THIRD-PARTY-LICENSES.txt.
// Run through `./dev graphiql-assets`.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'graph', 'http', 'graphiql', 'static');
const common = {
  absWorkingDir: here, // metafile paths, and so the package folders below, are relative to it
  bundle: true,
  minify: true,
  legalComments: 'none', // the licences are collected whole into THIRD-PARTY-LICENSES.txt
  target: ['es2022'],
  outdir: out,
  metafile: true,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

// Monaco's language services, each a classic worker script of its own.
const workers = await esbuild.build({
  ...common,
  entryPoints: {
    editor: 'monaco-editor/esm/vs/editor/editor.worker.js',
    json: 'monaco-editor/esm/vs/language/json/json.worker.js',
    graphql: 'monaco-graphql/esm/graphql.worker.js',
  },
  entryNames: '[name].worker-[hash]',
  format: 'iife',
});
const workerFiles = {};
for (const [file, output] of Object.entries(workers.metafile.outputs)) {
  const label = basename(output.entryPoint ?? '').replace(/\.worker\.js$/, '');
  workerFiles[label] = basename(file);
}

const app = await esbuild.build({
  ...common,
  entryPoints: { graphiql: join(here, 'src', 'graphiql.jsx') },
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  format: 'esm',
  jsx: 'automatic',
  loader: { '.ttf': 'file', '.woff': 'file', '.woff2': 'file' },
  define: { ...common.define, MONACO_WORKERS: JSON.stringify(workerFiles) },
});

const builtFiles = Object.keys(app.metafile.outputs).concat(Object.keys(workers.metafile.outputs));
const entry = (extension) => basename(builtFiles.find((file) => file.endsWith(extension) && basename(file).startsWith('graphiql-')));

// Every npm package any output was built from, found by the node_modules path of its inputs.
const packageDirs = new Set();
for (const build of [workers, app]) {
  for (const input of Object.keys(build.metafile.inputs)) {
    const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
    if (match) packageDirs.add(match[1]);
  }
}
const found = [...packageDirs].map((dir) => {
  const meta = JSON.parse(readFileSync(join(here, dir, 'package.json'), 'utf8'));
  const licenceFile = readdirSync(join(here, dir)).find((name) => /^(licen[cs]e|copying)/i.test(name));
  return {
    name: meta.name,
    version: meta.version,
    license: meta.license ?? null,
    licenseText: licenceFile ? readFileSync(join(here, dir, licenceFile), 'utf8').trim() : null,
  };
});
// A package nested under several others is one entry.
const packages = [...new Map(found.map((p) => [`${p.name}@${p.version}`, p])).values()]
  .sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));

writeFileSync(
  join(out, 'THIRD-PARTY-LICENSES.txt'),
  packages.map((p) => [
    `${p.name} ${p.version} (${p.license ?? 'no licence field'})`,
    p.licenseText ?? `The package ships no licence file; its package.json declares: ${p.license}.`,
  ].join('\n\n')).join(`\n\n${'-'.repeat(78)}\n\n`) + '\n',
);

const files = {};
for (const name of readdirSync(out).sort()) {
  const bytes = readFileSync(join(out, name));
  files[name] = { bytes: statSync(join(out, name)).size, sha256: createHash('sha256').update(bytes).digest('hex') };
}
const lock = JSON.parse(readFileSync(join(here, 'package-lock.json'), 'utf8'));
const manifest = {
  builtBy: './dev graphiql-assets (tools/graphiql/build.mjs)',
  esbuild: lock.packages['node_modules/esbuild'].version,
  entries: { script: entry('.js'), stylesheet: entry('.css') },
  workers: workerFiles,
  packages: packages.map(({ name, version, license }) => ({ name, version, license })),
  files,
};
writeFileSync(join(out, 'MANIFEST.json'), JSON.stringify(manifest, null, 2) + '\n');

const total = Object.values(files).reduce((sum, file) => sum + file.bytes, 0);
console.log(`${Object.keys(files).length} files, ${(total / 1024 / 1024).toFixed(2)} MiB in ${relative(process.cwd(), out)}`);
if (!existsSync(join(out, manifest.entries.script))) throw new Error('the GraphiQL script was not built');
