import t from 'tap';
import { LoadMonitor, type DelayHistogram } from '../../server/load-monitor.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

/** Samples in ms (whole sampling periods, as perf_hooks records them). */
function fakeHistogram(): DelayHistogram & { samples: number[]; enabled: boolean } {
  const h = {
    samples: [] as number[],
    enabled: false,
    enable: () => (h.enabled = true),
    disable: () => !(h.enabled = false),
    reset: () => void (h.samples = []),
    // Nearest rank, as HdrHistogram does.
    percentile: (p: number) => [...h.samples].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * h.samples.length) - 1)]! * 1e6,
    get max() {
      return Math.max(...h.samples) * 1e6;
    },
    get count() {
      return h.samples.length;
    },
  };
  return h;
}

const memory = () => ({ rss: 300 * 1024 * 1024, heapUsed: 120.26 * 1024 * 1024 });
const counts = { node: 'n1', sockets: 7, endpoints: 5, loginsRefusedBusy: 2, passwordChecksRefusedBusy: 1 };

void t.test('LoadMonitor.figures reports lateness beyond the sampling period and memory in MB', async (t) => {
  const clock = new FakeClock();
  const histogram = fakeHistogram();
  const m = new LoadMonitor({ clock, histogram, memory, resolutionMs: 20, windowMs: 10_000 });
  m.start();
  t.teardown(() => m.stop());
  histogram.samples.push(...Array<number>(98).fill(20), 60, 95);
  clock.advance(4_000);
  const f = m.figures(counts);
  t.same(f, { ...counts, rssMb: 300, heapUsedMb: 120.3, loopDelayMs: { p50: 0, p99: 40, max: 75, windowMs: 4_000 } }, 'before the first window ends: the time since start');
});

void t.test('LoadMonitor after a window ends reports that whole window until the next one ends', async (t) => {
  const clock = new FakeClock();
  const histogram = fakeHistogram();
  const m = new LoadMonitor({ clock, histogram, memory, resolutionMs: 20, windowMs: 10_000 });
  m.start();
  t.teardown(() => m.stop());
  histogram.samples.push(20, 20, 70);
  clock.advance(10_000);
  t.same(histogram.samples, [], 'the histogram starts afresh each window');
  histogram.samples.push(20, 20, 20);
  clock.advance(5_000);
  t.same(m.figures(counts).loopDelayMs, { p50: 0, p99: 50, max: 50, windowMs: 10_000 }, 'the last whole window, not the quiet part of the current one');
  clock.advance(5_000);
  t.same(m.figures(counts).loopDelayMs, { p50: 0, p99: 0, max: 0, windowMs: 10_000 });
});

void t.test('LoadMonitor.stop is idempotent and leaves no timer and no sampling behind', async (t) => {
  const clock = new FakeClock();
  const histogram = fakeHistogram();
  const m = new LoadMonitor({ clock, histogram, memory });
  m.start();
  t.equal(histogram.enabled, true);
  m.stop();
  m.stop();
  t.equal(histogram.enabled, false);
  t.equal(clock.pending(), 0);
  t.same(m.figures(counts).loopDelayMs.p99, 0, 'no samples: 0, not NaN');
});
