import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createLogger } from '../../platform/log.ts';
import { StateFile } from '../../runtime/state/state-file.ts';

/** A device's kept state (runtime/state/state-file.ts): whole documents or none, and never a crash. */
const Doc = z.strictObject({ on: z.boolean() });

function setup(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-statefile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(s) } });
  return { dir, lines, log };
}

void t.test('write then read in a new StateFile gives the value back; no temp file is left', async (t) => {
  const { dir, log } = setup(t);
  const path = join(dir, 'sub', 'doc.json');
  t.equal(new StateFile(path, Doc, log).read(), undefined, 'none kept yet');
  new StateFile(path, Doc, log).write({ on: true });
  t.same(new StateFile(path, Doc, log).read(), { on: true });
  t.notOk(existsSync(`${path}.tmp`));
});

void t.test('a document of the wrong shape is set aside, and the warning names the field and the file', async (t) => {
  const { dir, lines, log } = setup(t);
  const path = join(dir, 'doc.json');
  writeFileSync(path, '{"on":"yes"}');
  t.equal(new StateFile(path, Doc, log).read(), undefined);
  t.equal(readFileSync(`${path}.unreadable`, 'utf8'), '{"on":"yes"}', 'kept for a look');
  t.notOk(existsSync(path));
  t.match(lines.join(''), /"why":"on: Invalid input: expected boolean, received string".*kept state unreadable/);
});

void t.test('a write that cannot reach the disk logs a warning and does not throw; after close nothing is written', async (t) => {
  const { dir, lines, log } = setup(t);
  writeFileSync(join(dir, 'a-file'), '');
  new StateFile(join(dir, 'a-file', 'doc.json'), Doc, log).write({ on: true });
  t.match(lines.join(''), /state not kept on disk/);
  const file = new StateFile(join(dir, 'doc.json'), Doc, log);
  file.close();
  file.write({ on: true });
  t.notOk(existsSync(join(dir, 'doc.json')));
});
