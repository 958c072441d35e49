/**
 * Values a shipped profile or a documentation example holds that a device must never run with:
 * placeholders (`REPLACE_…`), example hosts (RFC 2606 / 6761 names, documentation addresses of
 * RFC 5737 / 3849) and URLs whose port is out of range. Pure: the loader turns each into a
 * `file: field: message` line, so `sweep config check` and `sweep endpoint` refuse the file
 * before anything logs in.
 */

export interface FieldProblem {
  /** Dotted field path, as the schema's errors spell it (`access.url`). */
  path: string;
  message: string;
}

/** A value still holding a profile's placeholder: `REPLACE_…`, `CHANGEME`, `<…>`. */
const PLACEHOLDER = /REPLACE[_-]|CHANGE[_-]?ME|^<[^>]*>$|^\.\.\.$|…/i;

/** Host names reserved for examples and documentation (RFC 2606, RFC 6761). */
const EXAMPLE_HOST = /(^|\.)(example|invalid|test)$|(^|\.)example\.(com|net|org)$/i;

/** Documentation address ranges: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849). */
function documentationAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return /^(192\.0\.2|198\.51\.100|203\.0\.113)\.\d{1,3}$/.test(h) || /^2001:0?db8:/.test(h);
}

/** Fields holding a URL whose host a device connects to, and the schemes allowed there. */
const URL_FIELDS: Array<{ path: string[]; schemes: string[] }> = [
  { path: ['access', 'url'], schemes: ['ws:', 'wss:'] },
  { path: ['diagnostics', 'url'], schemes: ['mqtt:', 'mqtts:'] },
];

function at(obj: unknown, path: string[]): unknown {
  let v = obj;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** Checks one URL value: parses, port 1-65535, not an example or documentation host. */
export function urlProblem(value: string, schemes: string[]): string | undefined {
  const port = /^[a-z]+:\/\/(?:\[[^\]]*\]|[^/:?#]*):(\d+)/i.exec(value)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return `port ${port} is out of range; allowed: 1-65535`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value}" is not a valid URL; allowed: ${schemes.map((s) => `${s}//host:port/…`).join(' or ')}`;
  }
  // A wrong scheme is the schema's to name.
  if (!schemes.includes(url.protocol)) return undefined;
  const host = url.hostname;
  if (host === '') return `"${value}" has no host`;
  if (EXAMPLE_HOST.test(host) || documentationAddress(host)) return `${host} is an example host from the profile or the docs; put the real server's name or address here`;
  return undefined;
}

/**
 * Everything in a (migrated, not yet validated) config file that would make a device run with
 * example values. One problem per field.
 */
export function deployabilityProblems(config: unknown): FieldProblem[] {
  const out: FieldProblem[] = [];
  const walk = (v: unknown, path: string[]): void => {
    if (typeof v === 'string') {
      if (path[0] !== '$schema' && PLACEHOLDER.test(v)) out.push({ path: path.join('.'), message: `"${v}" is a placeholder; replace it (README "Configure the device")` });
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, [...path, String(i)]));
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, item] of Object.entries(v)) walk(item, [...path, k]);
    }
  };
  walk(config, []);
  for (const { path, schemes } of URL_FIELDS) {
    const value = at(config, path);
    const dotted = path.join('.');
    if (typeof value !== 'string' || out.some((p) => p.path === dotted)) continue;
    const problem = urlProblem(value, schemes);
    if (problem) out.push({ path: dotted, message: problem });
  }
  return out;
}
