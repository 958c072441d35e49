// Issue 14: the engine's sweep scenarios (pull, push, S8 rollback, S9, S12, forged, replayed and
// other-account updates) once more, with every endpoint signing and checking grants through the
// WebCrypto port the phone page uses (core/engine/webcrypto.ts) instead of node:crypto.
process.env.SWEEP_TEST_CRYPTO = 'webcrypto';
await import('./sweep.test.ts');
export {};
