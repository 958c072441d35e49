import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const UNIT = fileURLToPath(new URL('../../deploy/systemd/sweep-server-node.service', import.meta.url));

void t.test('deploy/systemd/sweep-server-node.service migrates, serves with --db/--bus/--node-id, is sandboxed and passes systemd-analyze verify', async (t) => {
  const text = await readFile(UNIT, 'utf8');
  for (const line of ['User=sweep-server', 'ProtectSystem=strict', 'PrivateDevices=yes', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=', 'StateDirectory=sweep-server', 'SystemCallFilter=@system-service', 'EnvironmentFile=/etc/sweep-server/node.env']) {
    t.ok(text.split('\n').includes(line), line);
  }
  t.match(text, /^ExecStartPre=\S+ \S+ server migrate --data \/var\/lib\/sweep-server --db \$\{SWEEP_DB\}$/m);
  t.match(text, /^ExecStart=\S+ \S+ server serve .*--db \$\{SWEEP_DB\} --bus \$\{SWEEP_BUS\} --node-id %H /m);
  t.notMatch(text, /postgres:\/\/[^\s@]*:[^\s@]*@/, 'no password in the unit');
  const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.pass('verify', { skip: 'systemd-analyze missing (apt-get install systemd; .ci/run does)' });
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'sweep-node-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const copy = join(dir, 'sweep-server-node.service');
  await writeFile(copy, text.replaceAll('/opt/sweep-server/bin/node', process.execPath).replace('EnvironmentFile=/etc/sweep-server/node.env', `EnvironmentFile=${join(dir, 'node.env')}`));
  await writeFile(join(dir, 'node.env'), 'SWEEP_SERVER_HOST=127.0.0.1\nSWEEP_SERVER_PORT=8443\nSWEEP_DB=postgres://sweep@127.0.0.1:5432/sweep\nSWEEP_BUS=nats://127.0.0.1:4222\n');
  const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
