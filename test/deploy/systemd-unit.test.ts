import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const UNIT = fileURLToPath(new URL('../../deploy/systemd/sweep.service', import.meta.url));

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}
const analyze = which('systemd-analyze');

/** `Key=value` lines of one section, keys may repeat. */
function directives(text: string): Array<[string, string]> {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('[') && l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]);
}

void t.test('deploy/systemd/sweep.service passes systemd-analyze verify', { skip: analyze ? false : 'systemd-analyze missing (apt-get install systemd; .ci/run does)' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // verify checks that ExecStart's binary exists: point it at this machine's node instead of /opt/sweep/bin/node.
  const text = (await readFile(UNIT, 'utf8')).replaceAll('/opt/sweep/bin/node', process.execPath);
  const copy = join(dir, 'sweep.service');
  await writeFile(copy, text);
  const res = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(analyze!, ['verify', copy], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
    });
  });
  t.equal(res.code, 0, res.out);
  t.equal(res.out.split('\n').filter((l) => l.includes('sweep.service')).join('\n'), '', 'no warnings about the unit');
});

void t.test('deploy/systemd/sweep.service declares notify, watchdog, restart, the sweep user and the sandbox', async (t) => {
  const d = new Map<string, string[]>();
  for (const [k, v] of directives(await readFile(UNIT, 'utf8'))) d.set(k, [...(d.get(k) ?? []), v]);
  const one = (k: string): string | undefined => d.get(k)?.at(-1);
  t.equal(one('Type'), 'notify');
  t.equal(one('NotifyAccess'), 'all', 'systemd-notify is a child of the runtime');
  t.match(one('WatchdogSec'), /^\d+s$/);
  t.equal(one('Restart'), 'on-failure');
  t.equal(one('User'), 'sweep');
  t.same(one('SupplementaryGroups')?.split(' ').sort(), ['audio', 'dialout']);
  for (const [k, v] of [
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['NoNewPrivileges', 'yes'],
    ['ReadWritePaths', '/var/lib/sweep'],
    ['StateDirectory', 'sweep'],
    ['CapabilityBoundingSet', ''],
  ] as const) {
    t.equal(one(k), v, `${k}=${v}`);
  }
  t.match(one('ExecStart'), /sweep\.mjs endpoint --config \/etc\/sweep\/sweep\.json$/);
  t.match(one('ExecStartPre'), /sweep\.mjs config check \/etc\/sweep\/sweep\.json$/);
});
