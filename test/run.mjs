// Runs the tap suite and ends with one plain line "N passed, N failed[, N skipped]" that any CI
// reader understands; the exit code is tap's.
import { spawn } from 'node:child_process';

const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', ...process.argv.slice(2)], { stdio: ['inherit', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail = (tail + d.toString()).slice(-4000);
});
child.on('exit', (code, signal) => {
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?/.exec(tail);
  const passed = Number(m?.[2] ?? 0);
  const failed = Number(m?.[3] ?? 0) + (code !== 0 && !m?.[3] ? 1 : 0);
  const skipped = Number(m?.[4] ?? 0);
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  process.exit(code ?? (signal ? 1 : 0));
});
