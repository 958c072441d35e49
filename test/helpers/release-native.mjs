// Preloaded into every test process (package.json "tap"."node-arg"). node-datachannel keeps the
// event loop alive until the wrappers of closed connections are garbage collected; a test
// process would linger for many seconds after its last teardown. An unref'd periodic GC lets it
// exit as soon as everything is closed, without keeping it alive itself.
if (typeof globalThis.gc === 'function') setInterval(() => globalThis.gc(), 1000).unref();
