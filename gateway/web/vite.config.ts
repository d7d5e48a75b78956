// The build of the web app that the gateway embeds (docs/web.md). The output
// in dist/ is committed; `make web` rebuilds it and CI checks it is current.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  // JSX for Preact through esbuild: no framework plugin needed.
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    // One entry, no code splitting: the polyfill would only add bytes.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    // Nothing inlined as data: URLs: the CSP allows scripts and styles
    // from the server only.
    assetsInlineLimit: 0,
  },
});
