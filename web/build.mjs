// Builds the web app into dist/: hashed ESM bundles under dist/assets/ and an
// index.html that references them. `node build.mjs` (or `npm run build`).
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const assets = join(dist, "assets");
const url = (file) => "/assets/" + relative(assets, join(here, file));

rmSync(dist, { recursive: true, force: true });

// `*.lazy.css`: the styles of a chunk loaded on demand (the interviewer's
// panel, the playback), minified into a string its module injects, so that
// the first load carries only the styles everyone needs.
const lazyCss = {
  name: "lazy-css",
  setup(build) {
    build.onLoad({ filter: /\.lazy\.css$/ }, async (args) => {
      const { code } = await esbuild.transform(readFileSync(args.path, "utf8"), { loader: "css", minify: true });
      return { contents: code, loader: "text" };
    });
  },
};
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
  plugins: [lazyCss],
});

// The code runner (see src/runner/): its frame page, two workers, and the
// runtimes they load, all under /assets/runner/ (served with CORS, since the
// sandboxed frame's origin is opaque). Loaded only when someone presses Run.
const runner = await buildRunner();

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
// The runner loads on the first Run: the frame, then one language's worker
// (and, for Python, Pyodide). What the binary stores is the gzip column.
const runnerSum = (test) => {
  const picked = runner.rows.filter(([name]) => test(name));
  return [picked.reduce((a, [, r]) => a + r, 0), picked.reduce((a, [, , g]) => a + g, 0)];
};
for (const [name, raw, gz] of runner.rows) console.log(name.padEnd(44), kb(raw), kb(gz));
const [allRaw, allGz] = runnerSum(() => true);
console.log("runner, all (stored in the binary: gzip)".padEnd(44), kb(allRaw), kb(allGz));
const [jsRaw, jsGz] = runnerSum((n) => /frame-|js-worker-/.test(n));
console.log("runner, first JavaScript run".padEnd(44), kb(jsRaw), kb(jsGz));
const [pyRaw, pyGz] = runnerSum((n) => /frame-|py-worker-|pyodide-/.test(n));
console.log("runner, first Python run".padEnd(44), kb(pyRaw), kb(pyGz));
console.log(
  "first load (index.html + entry JS + CSS)".padEnd(44),
  kb(first.reduce((a, [r]) => a + r, 0)),
  kb(first.reduce((a, [, g]) => a + g, 0)),
);

async function buildRunner() {
  const dir = join(assets, "runner");
  const common = {
    absWorkingDir: here,
    bundle: true,
    minify: true,
    target: ["es2020", "chrome100", "firefox100", "safari15"],
    outdir: dir,
    entryNames: "[name]-[hash]",
    metafile: true,
    legalComments: "none",
    logLevel: "warning",
  };
  // Module workers: Pyodide refuses classic ones.
  const workers = await esbuild.build({
    ...common,
    entryPoints: { "js-worker": "src/runner/js-worker.js", "py-worker": "src/runner/py-worker.js" },
    format: "esm",
  });
  const out = (name) => {
    const file = Object.keys(workers.metafile.outputs).find((f) => f.includes(`/${name}-`) && f.endsWith(".js"));
    if (!file) throw new Error(`runner output ${name} not found`);
    return url(file);
  };
  const pyodidePkg = JSON.parse(readFileSync(join(here, "node_modules/pyodide/package.json"), "utf8"));
  // The version in the folder's name makes the files immutable (the server caches them for good).
  const pyodideDir = `pyodide-${pyodidePkg.version}`;
  mkdirSync(join(dir, pyodideDir));
  for (const f of ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]) {
    copyFileSync(join(here, "node_modules/pyodide", f), join(dir, pyodideDir, f));
  }
  const frame = await esbuild.build({
    ...common,
    entryPoints: { frame: "src/runner/frame.js" },
    format: "iife", // a classic script: the opaque-origin frame loads it without CORS
    define: {
      __DUET_WORKERS__: JSON.stringify({ javascript: out("js-worker"), python: out("py-worker") }),
      __DUET_PYODIDE__: JSON.stringify(`/assets/runner/${pyodideDir}/`),
    },
  });
  const frameJs = Object.keys(frame.metafile.outputs).find((f) => f.endsWith(".js"));
  writeFileSync(
    join(dist, "runner.html"),
    `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Duet runner</title>\n<script src="${url(frameJs)}"></script>\n</head>\n<body></body>\n</html>\n`,
  );
  // Stored gzipped (the server sends them as they are to every browser, and
  // inflates them for a client that takes no gzip): smaller binary, no CPU
  // spent compressing 10 MB of wasm per visitor.
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(dir);
  const rows = [];
  for (const p of files) {
    const raw = readFileSync(p);
    const gz = gzipSync(raw, { level: 9 });
    if (gz.length < raw.length) {
      writeFileSync(p + ".gz", gz);
      unlinkSync(p);
    }
    rows.push([relative(dist, p), raw.length, Math.min(gz.length, raw.length)]);
  }
  return { rows, pyodideDir };
}
