// The floors of the layout (docs/architecture.md): each folder imports only from floors below it.
// A wrong-way import is a lint error, so CI fails on it (test/unit/floors.test.ts proves it does).
const above = (...names) => ({
  regex: `(^|/)(${names.join('|')})/`,
  message: `imports run down the floors only: this folder may not import from ${names.join(', ')} (docs/architecture.md)`,
});
const nodeModules = { regex: '^(node:|pino$|ws$|node-datachannel|serialport|better-sqlite3|argon2|mqtt$|aedes)', message: 'the foundation runs in browsers too: no node modules (docs/architecture.md)' };

/** [files, forbidden patterns] per floor, lowest first. */
export const FLOORS = [
  [['core/**/*.ts'], [nodeModules, above('platform', 'drivers', 'firmware-config', 'runtime', 'server', 'phone', 'lab', 'tools', 'bench', 'test', 'deploy')]],
  [['platform/**/*.ts'], [above('drivers', 'firmware-config', 'runtime', 'server', 'lab', 'tools', 'bench', 'test', 'deploy')]],
  [['drivers/**/*.ts'], [above('platform', 'firmware-config', 'runtime', 'server', 'lab', 'tools', 'bench', 'test', 'deploy')]],
  [['firmware-config/**/*.ts'], [above('platform', 'drivers', 'runtime', 'server', 'lab', 'tools', 'bench', 'test', 'deploy')]],
  // The phone page: the foundation only (the server merely serves its build).
  [['phone/src/**/*.ts'], [nodeModules, above('platform', 'drivers', 'firmware-config', 'runtime', 'server', 'lab', 'tools', 'bench', 'test', 'deploy')]],
  [['phone/*.ts'], [above('platform', 'drivers', 'firmware-config', 'runtime', 'server', 'lab', 'tools', 'bench', 'test', 'deploy')]],
  [['server/**/*.ts'], [above('drivers', 'firmware-config', 'runtime', 'phone', 'lab', 'tools', 'bench', 'test')]],
  [['runtime/**/*.ts'], [above('server', 'phone', 'lab', 'tools', 'bench', 'test', 'deploy')]],
  [['lab/**/*.ts'], [above('tools', 'bench', 'test', 'deploy')]],
  // Operator tools (the `sweep` dispatcher, which starts the lab and the server too; diag, config, audio).
  [['tools/**/*.ts'], [above('bench', 'test', 'deploy')]],
];

export const floorsConfig = FLOORS.map(([files, patterns]) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns }] },
}));
