import t from 'tap';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';
// @ts-expect-error -- a plain JS module shared with eslint.config.js, without type declarations
import { floorsConfig } from '../../eslint.floors.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Lints `code` as if it were the file `path`, with the floor rules only. */
async function floorErrors(path: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT, overrideConfigFile: true, overrideConfig: floorsConfig as never });
  const [result] = await eslint.lintText(code, { filePath: `${ROOT}/${path}` });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const WRONG_WAY: Array<[string, string]> = [
  ['core/protocol/x.ts', "import { Endpoint } from '../../runtime/endpoint.ts';"],
  ['core/x.ts', "import { createHash } from 'node:crypto';"],
  ['core/x.ts', "import { pino } from 'pino';"],
  ['drivers/audio/x.ts', "import { Endpoint } from '../../runtime/endpoint.ts';"],
  ['drivers/audio/x.ts', "import { EndpointConfig } from '../../firmware-config/endpoint-config.ts';"],
  ['firmware-config/x.ts', "import { createLogger } from '../platform/log.ts';"],
  ['server/x.ts', "import { Endpoint } from '../runtime/endpoint.ts';"],
  ['phone/src/x.ts', "import { signToken } from '../../platform/token.ts';"],
  ['server/x.ts', "import { buildWeb } from '../phone/build.ts';"],
  ['runtime/session/x.ts', "import { World } from '../../lab/world.ts';"],
  ['runtime/x.ts', "import { AccessServer } from '../server/access-server.ts';"],
  // No exceptions in runtime/: the `sweep` dispatcher that starts the lab lives in tools/.
  ['runtime/endpoint-process.ts', "import { runLab } from '../lab/lab.ts';"],
  ['runtime/diagnostics/x.ts', "import { OperatorClient } from '../../tools/operator.ts';"],
  ['lab/x.ts', "import { main } from '../tools/cli.ts';"],
  ['tools/x.ts', "import { World } from '../test/helpers/world.ts';"],
  ['tools/x.ts', "import { buildBundle } from '../deploy/bundle.ts';"],
];

void t.test('an import that runs up a floor is a lint error, so CI fails on it (docs/architecture.md)', async (t) => {
  for (const [path, code] of WRONG_WAY) {
    const errors = await floorErrors(path, code);
    t.equal(errors.length, 1, `${path}: ${code}`);
    t.match(errors[0] ?? '', /floors|foundation/);
  }
});

void t.test('imports that run down the floors pass the floor rules', async (t) => {
  const RIGHT_WAY: Array<[string, string]> = [
    ['core/protocol/x.ts', "import { SweepError } from '../errors.ts';"],
    ['drivers/audio/x.ts', "import type { Logger } from '../../core/log.ts';"],
    ['server/x.ts', "import { issueCertificate } from '../platform/certificate.ts';"],
    ['runtime/x.ts', "import { EndpointConfig } from '../firmware-config/endpoint-config.ts';"],
    ['lab/x.ts', "import { AccessServer } from '../server/access-server.ts';"],
    ['tools/x.ts', "import { runLab } from '../lab/lab.ts';"],
    ['tools/x.ts', "import { serverCli } from '../server/cli.ts';"],
    ['tools/x.ts', "import { runEndpointProcess } from '../runtime/endpoint-process.ts';"],
    ['bench/x.ts', "import { OperatorClient } from '../tools/operator.ts';"],
    ['phone/src/x.ts', "import { RpcChannel } from '../../core/protocol/rpc.ts';"],
  ];
  for (const [path, code] of RIGHT_WAY) t.same(await floorErrors(path, code), [], `${path}: ${code}`);
});
