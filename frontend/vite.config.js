// Builds the page into the Python package's static files (git-ignored), which chatgate serves.
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

export default defineConfig({
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('../chatgate/web/static', import.meta.url)),
    emptyOutDir: true,
    target: 'es2020',
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    // No data: URIs: the page's CSP takes fonts and images from its own origin only.
    assetsInlineLimit: 0,
    reportCompressedSize: true,
    commonjsOptions: {
      // markdown-it-texmath falls back to require('katex') when no engine is given; the page
      // always gives one and loads KaTeX itself, only when a reply has math.
      ignore: ['katex'],
    },
  },
});
