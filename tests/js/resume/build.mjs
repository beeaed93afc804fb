// node resume/build.mjs SNIPPET HOST PLATFORM OUTFILE [AFTER]: the README snippet bundled with its host
// (and the code that uses it after it).
import { bundle } from '../lib/snippets.mjs';

const [name, host, platform, outfile, after] = process.argv.slice(2);
await bundle(name, host, platform, outfile, after);
