import { readFile } from 'node:fs/promises';
import { EndpointConfig } from './endpoint-config.ts';
import { describeIssues } from '../runtime/protocol/validate.ts';
import { SweepError } from '../runtime/util/errors.ts';

/** Reads and validates an endpoint config file; errors name the file, the field path and what was allowed. */
export async function loadEndpointConfig(file: string): Promise<EndpointConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new SweepError('INVALID_CONFIG', `${file}: cannot read: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SweepError('INVALID_CONFIG', `${file}: not valid JSON: ${(err as Error).message}`);
  }
  const result = EndpointConfig.safeParse(json);
  if (!result.success) throw new SweepError('INVALID_CONFIG', `${file}: ${describeIssues(result.error)}`);
  return result.data;
}
