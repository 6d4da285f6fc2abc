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
    reportCompressedSize: true,
    commonjsOptions: {
      // markdown-it-texmath falls back to require('katex') when no engine is given; the page
      // always gives one and loads KaTeX itself, only when a reply has math.
      ignore: ['katex'],
    },
  },
});
