// npm run build: bundle src/ with esbuild (the fermyon:spin/... imports named in wit/ stay
// external), then make the component with Spin's j2w (componentize-js).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { SpinEsbuildPlugin } from '@spinframework/build-tools/plugins/esbuild/index.js';

const output = 'dist/{{project-name}}.wasm';

await build({
  entryPoints: ['./src/index.js'],
  outfile: './build/bundle.js',
  bundle: true,
  format: 'esm',
  platform: 'node',
  logLevel: 'error',
  plugins: [await SpinEsbuildPlugin()],
});

mkdirSync('dist', { recursive: true });
// j2w exits 0 even when componentizing fails, so its output is checked too.
const j2w = spawnSync('j2w', ['-i', 'build/bundle.js', '-o', output], { encoding: 'utf8', shell: true });
process.stdout.write(j2w.stdout);
process.stderr.write(j2w.stderr);
if (j2w.status !== 0 || /error occurred/i.test(j2w.stderr)) process.exit(1);
