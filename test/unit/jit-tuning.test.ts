import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { AUDIO_INTERRUPT_BUDGET, interruptBudgetFlag } from '../../runtime/util/jit-tuning.ts';

const MODULE = fileURLToPath(new URL('../../runtime/util/jit-tuning.ts', import.meta.url));

void t.test('the budget is set unless the operator chose one', async (t) => {
  t.equal(interruptBudgetFlag([], undefined), `--interrupt-budget=${AUDIO_INTERRUPT_BUDGET}`);
  t.equal(interruptBudgetFlag(['--max-old-space-size=64'], '--enable-source-maps'), `--interrupt-budget=${AUDIO_INTERRUPT_BUDGET}`);
  t.equal(interruptBudgetFlag(['--interrupt-budget=67584'], undefined), undefined, 'node argument');
  t.equal(interruptBudgetFlag([], '--trace-warnings --interrupt_budget=1000'), undefined, 'NODE_OPTIONS, underscore spelling');
  t.equal(interruptBudgetFlag(['--interrupt-budget-for-feedback-allocation=10'], undefined), `--interrupt-budget=${AUDIO_INTERRUPT_BUDGET}`, 'a different flag');
});

/**
 * In a fresh Node: a small per-frame function called 1,000 times (20 s of frames) is optimised by
 * TurboFan with the tuning and not at V8's default budget. Synchronous recompilation makes the
 * outcome independent of timing.
 */
function optimisedAfter1000Calls(nodeArgs: string[]): Promise<boolean> {
  const script = `
    import { tuneJitForAudio } from ${JSON.stringify(MODULE)};
    tuneJitForAudio();
    class Rtp { seq = 0; ts = 0; next(p) { this.seq = (this.seq + 1) & 0xffff; this.ts = (this.ts + 960) >>> 0; return p.length + this.seq; } }
    const r = new Rtp(); const p = new Uint8Array(80);
    for (let i = 0; i < 1000; i++) r.next(p);
    // Bit 6 of V8's optimisation status: the function runs TurboFan code.
    console.log((%GetOptimizationStatus(r.next) & 64) !== 0 ? 'turbofan' : 'not optimised');`;
  const args = ['--allow-natives-syntax', '--no-concurrent-recompilation', ...nodeArgs, '--import', 'tsx', '--input-type=module', '-e', script];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout.trim() === 'turbofan');
    });
  });
}

void t.test('the tuning makes V8 optimise a per-frame function within 20 s of frames', async (t) => {
  t.equal(await optimisedAfter1000Calls([]), true, 'tuned');
  t.equal(await optimisedAfter1000Calls(['--interrupt-budget=67584']), false, "V8's default, which the tuning leaves alone");
});
