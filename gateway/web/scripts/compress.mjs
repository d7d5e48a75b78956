// Precompresses the built assets (gzip and brotli, highest levels) next to
// each file, so the gateway serves them without compressing per request.
// Deterministic: the same input gives the same bytes (gzip carries no time).
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const COMPRESSIBLE = /\.(html|js|css|svg|json|webmanifest|txt)$/;

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const root = process.argv[2] ?? "dist";
for (const path of walk(root).sort()) {
  if (!COMPRESSIBLE.test(path)) continue;
  const data = readFileSync(path);
  const gzip = gzipSync(data, { level: 9 });
  const brotli = brotliCompressSync(data, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
    },
  });
  // A variant that saves nothing is not worth a Content-Encoding.
  if (gzip.length < data.length) writeFileSync(`${path}.gz`, gzip);
  if (brotli.length < data.length) writeFileSync(`${path}.br`, brotli);
}
