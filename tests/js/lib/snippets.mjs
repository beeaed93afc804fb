// The client snippets of README.md, bundled as written: each is a ```js block after a
// `<!-- snippet: NAME -->` line. The snippets use three names they leave to the page:
// API (the GraphQL address), token and handle (called with each event); `host` is the module
// that provides them, imported ahead of the snippet's own code.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const JS = fileURLToPath(new URL('..', import.meta.url));

export function snippet(name) {
  const readme = readFileSync(README, 'utf8');
  const match = readme.match(new RegExp(`<!-- snippet: ${name} -->\\n\`\`\`js\\n([\\s\\S]*?)\`\`\`\\n`));
  if (!match) throw new Error(`README.md has no snippet named ${name}`);
  return match[1];
}

/** One file: `host` (a path relative to tests/js), the snippet, and then `after` (a path too, or
 * none: code that uses what the snippet made, as a page would), for Node or a browser. */
export async function bundle(name, host, platform, outfile, after) {
  const then = after ? readFileSync(new URL(`../${after}`, import.meta.url), 'utf8') : '';
  await build({
    stdin: { contents: `import { API, token, handle } from './${host}';\n${snippet(name)}\n${then}`, resolveDir: JS },
    bundle: true,
    platform,
    format: 'esm',
    // In Node the packages stay where npm put them (the bundle is written inside tests/js to find them).
    packages: platform === 'node' ? 'external' : undefined,
    outfile,
    logLevel: 'error',
  });
}
