import { readdir, readFile } from 'node:fs/promises';

/** CPU time (user + system, ms) a process has used, from /proc (Linux). */
export async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

export async function rssMbOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

export interface ThreadSample {
  name: string;
  cpuMs: number;
  /** Voluntary context switches: how often the thread went to sleep and was woken. */
  wakes: number;
}

/** Per-thread CPU and wake-ups of a process, keyed by thread id (Linux /proc). */
export async function threadsOf(pid: number): Promise<Map<string, ThreadSample>> {
  const out = new Map<string, ThreadSample>();
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    try {
      const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // The main thread shares its name with V8's helper threads: tell them apart.
      const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const status = await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const wakes = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      out.set(tid, { name, cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / 100, wakes });
    } catch {
      // The thread ended between listing and reading.
    }
  }
  return out;
}

/**
 * Where a process's CPU went between two samples: per thread name (threads of one name summed),
 * CPU ms and wake-ups per second, busiest first; threads that did nothing are left out.
 */
export function threadBreakdown(
  before: Map<string, ThreadSample>,
  after: Map<string, ThreadSample>,
  seconds: number,
): Record<string, { cpuMsPerSecond: number; wakesPerSecond: number }> {
  const byName = new Map<string, { cpu: number; wakes: number }>();
  for (const [tid, s] of after) {
    const b = before.get(tid) ?? { cpuMs: 0, wakes: 0 };
    const acc = byName.get(s.name) ?? { cpu: 0, wakes: 0 };
    acc.cpu += s.cpuMs - b.cpuMs;
    acc.wakes += s.wakes - b.wakes;
    byName.set(s.name, acc);
  }
  const rows = [...byName].filter(([, v]) => v.cpu > 0 || v.wakes >= seconds).sort((x, y) => y[1].cpu - x[1].cpu);
  return Object.fromEntries(
    rows.map(([name, v]) => [name, { cpuMsPerSecond: Math.round((v.cpu / seconds) * 10) / 10, wakesPerSecond: Math.round(v.wakes / seconds) }]),
  );
}
