// node resume/build.mjs SNIPPET HOST PLATFORM OUTFILE: the README snippet bundled with its host.
import { bundle } from '../lib/snippets.mjs';

const [name, host, platform, outfile] = process.argv.slice(2);
await bundle(name, host, platform, outfile);
