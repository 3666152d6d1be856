// Builds the web app into dist/: hashed ESM bundles under dist/assets/ and an
// index.html that references them. `node build.mjs` (or `npm run build`).
import * as esbuild from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const assets = join(dist, "assets");

rmSync(dist, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.js" },
  bundle: true,
  splitting: true, // the room (CodeMirror, Yjs, Phoenix) and each language load on demand
  format: "esm",
  minify: true,
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  outdir: assets,
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  publicPath: "/assets",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
});

// Find the entry's JS and CSS outputs.
let js = null;
let css = null;
for (const [file, out] of Object.entries(result.metafile.outputs)) {
  if (out.entryPoint === "src/main.js" && file.endsWith(".js")) {
    js = file;
    css = out.cssBundle || null;
  }
}
if (!js) throw new Error("entry bundle not found in esbuild metafile");
const url = (file) => "/assets/" + relative(assets, join(here, file));

// yjs must be bundled exactly once: two copies break y-codemirror.next.
const yjsCopies = new Set(
  Object.keys(result.metafile.inputs)
    .map((p) => /node_modules\/(?:.*\/)?yjs\/dist\//.test(p) && p.replace(/\/dist\/.*/, ""))
    .filter(Boolean),
);
if (yjsCopies.size > 1) throw new Error(`yjs bundled ${yjsCopies.size} times: ${[...yjsCopies].join(", ")}`);

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Duet</title>
<meta name="description" content="Live pair-programming rooms">
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='6' cy='8' r='5' fill='%234f46e5'/%3E%3Ccircle cx='11' cy='8' r='4' fill='%23f59e0b'/%3E%3C/svg%3E">
${css ? `<link rel="stylesheet" href="${url(css)}">\n` : ""}<script type="module" src="${url(js)}"></script>
</head>
<body>
<div id="app"></div>
<noscript>Duet needs JavaScript.</noscript>
</body>
</html>
`;
writeFileSync(join(dist, "index.html"), html);

// Size report.
const kb = (n) => (n / 1024).toFixed(1).padStart(7) + " KiB";
const size = (path) => {
  const buf = readFileSync(path);
  return [buf.length, gzipSync(buf, { level: 9 }).length];
};
const rows = [["index.html", ...size(join(dist, "index.html"))]];
for (const file of Object.keys(result.metafile.outputs).sort()) {
  rows.push([relative(dist, join(here, file)), ...size(join(here, file))]);
}
const first = [join(dist, "index.html"), join(here, js), css && join(here, css)].filter(Boolean).map(size);
console.log("file".padEnd(44), "raw".padStart(11), "gzip".padStart(11));
for (const [name, raw, gz] of rows) console.log(name.padEnd(44), kb(raw), kb(gz));
// The room page also needs the room chunk, what it imports statically, and one language.
const outputs = result.metafile.outputs;
const closure = (file, seen = new Set()) => {
  if (seen.has(file)) return seen;
  seen.add(file);
  for (const imp of outputs[file]?.imports || []) if (imp.kind === "import-statement") closure(imp.path, seen);
  return seen;
};
const roomChunk = Object.keys(outputs).find((f) => /\/room-[A-Z0-9]+\.js$/.test(f));
const python = Object.entries(outputs).find(([, o]) => Object.keys(o.inputs).some((i) => i.includes("@codemirror/lang-python/")));
if (roomChunk) {
  const files = new Set([...closure(js), ...closure(roomChunk), ...(python ? closure(python[0]) : [])]);
  const sizes = [join(dist, "index.html"), css && join(here, css), ...[...files].map((f) => join(here, f))].filter(Boolean).map(size);
  console.log(
    "room page, Python (all of the above it needs)".padEnd(44),
    kb(sizes.reduce((a, [r]) => a + r, 0)),
    kb(sizes.reduce((a, [, g]) => a + g, 0)),
  );
}
console.log(
  "first load (index.html + entry JS + CSS)".padEnd(44),
  kb(first.reduce((a, [r]) => a + r, 0)),
  kb(first.reduce((a, [, g]) => a + g, 0)),
);
