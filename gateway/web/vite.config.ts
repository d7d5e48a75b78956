// The build of the web app that the gateway embeds (docs/web.md). The output
// in dist/ is committed; `make web` rebuilds it and CI checks it is current.
import { defineConfig } from "vite";

// `npm run dev` serves the sources with hot reload and passes the API to a
// running `openheim serve` (OPENHEIM_URL, default http://127.0.0.1:1217),
// whose server.allowed_origins must list the dev server's origin.
const server = process.env.OPENHEIM_URL ?? "http://127.0.0.1:1217";

export default defineConfig({
  base: "/",
  server: {
    proxy: {
      "/api": server,
      "/readyz": server,
      "/ws": { target: server.replace(/^http/, "ws"), ws: true },
    },
  },
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
