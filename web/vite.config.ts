import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The Python server serves the build at `/`; HUBBUB_DEV_SERVER lets `npm run dev` talk to a running server.
const backend = process.env.HUBBUB_DEV_SERVER ?? 'http://127.0.0.1:8000'

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    outDir: fileURLToPath(new URL('../src/hubbub/webui/dist', import.meta.url)),
    emptyOutDir: true,
    // Stable, small output: one JS and one CSS chunk; hashed names so browsers cache forever.
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: {
      '/api': backend,
      '/healthz': backend,
      '/ws': { target: backend.replace(/^http/, 'ws'), ws: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})
