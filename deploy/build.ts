import { buildBundle } from './bundle.ts';

process.stdout.write(`built ${await buildBundle()}\n`);
