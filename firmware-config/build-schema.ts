import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from './atomic-write.ts';
import { endpointConfigJsonSchemaText, SCHEMA_FILE } from './json-schema.ts';

// `npm run build:schema`: regenerates the published JSON Schema from the zod schema.
const file = fileURLToPath(SCHEMA_FILE);
await writeFileAtomic(file, endpointConfigJsonSchemaText());
process.stdout.write(`wrote ${file}\n`);
