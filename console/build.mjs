// Bundles the console into dist/ (served by `openlookout serve` at /console/) and the unit tests
// into dist-test/. No CDN: everything the page loads is in dist/.
import { build } from "esbuild";
import { cpSync, mkdirSync, readdirSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
mkdirSync("dist");
cpSync("static", "dist", { recursive: true });
await build({
  entryPoints: ["src/main.tsx"],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: "es2022",
  outfile: "dist/app.js",
  jsx: "automatic",
  jsxImportSource: "preact",
  logLevel: "warning",
});

rmSync("dist-test", { recursive: true, force: true });
await build({
  entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`),
  bundle: true,
  platform: "node",
  format: "cjs", // the SDK's Node code has CommonJS requires an ESM bundle cannot take
  outdir: "dist-test",
  outExtension: { ".js": ".cjs" },
  logLevel: "warning",
});
