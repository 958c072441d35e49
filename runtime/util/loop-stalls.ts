import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Watches this process's event loop; `stop()` gives its longest stall in ms. Audio gaps are
 * measured in wall-clock time, so a stall caused by host load shows up as a gap the sweep did
 * not cause; reporting both lets a reader (or a test) tell the two apart.
 */
export function watchLoopStalls(): { stop(): number } {
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  return {
    stop: () => {
      delay.disable();
      return delay.max / 1e6;
    },
  };
}
