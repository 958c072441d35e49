import { z } from 'zod';
import { EndpointConfigFile } from './endpoint-config.ts';

/** Where the published JSON Schema lives (for editors: `"$schema": "…/endpoint-config.schema.json"`). */
export const SCHEMA_FILE = new URL('./endpoint-config.schema.json', import.meta.url);

/**
 * The JSON Schema of the config file, generated from the zod schema (the single source). Input
 * view: keys with defaults are optional. Cross-field rules (password xor secretsFile) are checked
 * by the loader only.
 */
export function endpointConfigJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(EndpointConfigFile, { io: 'input', target: 'draft-2020-12' });
  return {
    $schema: schema.$schema,
    $id: 'https://sweep.invalid/schemas/endpoint-config.schema.json',
    title: 'Sweep endpoint configuration',
    description: 'Generated from firmware-config/endpoint-config.ts by `npm run build:schema`; do not edit.',
    ...schema,
  };
}

export function endpointConfigJsonSchemaText(): string {
  return `${JSON.stringify(endpointConfigJsonSchema(), null, 2)}\n`;
}
