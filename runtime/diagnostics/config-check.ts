import type { DiagnosticsConfig } from '../../firmware-config/diagnostics-config.ts';

export interface ConfigProblem {
  field: string;
  message: string;
}

/**
 * Settings that validate but deserve an operator's attention; each becomes a `config.problem`
 * event (Q5) once the device reaches the broker.
 */
export function configProblems(c: DiagnosticsConfig): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const host = /^mqtts?:\/\/([^:/]+)/.exec(c.url)?.[1] ?? '';
  if (c.url.startsWith('mqtt://') && !['127.0.0.1', 'localhost', '::1'].includes(host)) {
    out.push({ field: 'diagnostics.url', message: `mqtt://${host} is not encrypted; use mqtts:// outside loopback` });
  }
  if (c.shell.enabled && c.operatorKeys.length === 0) {
    out.push({ field: 'diagnostics.operatorKeys', message: 'shell.enabled but no operatorKeys: nobody can open the shell' });
  }
  if (c.password !== undefined) {
    out.push({ field: 'diagnostics.password', message: 'the broker password is in the config itself; prefer passwordFile' });
  }
  if (c.tls?.certFile !== undefined && c.tls.keyFile === undefined) {
    out.push({ field: 'diagnostics.tls.keyFile', message: 'tls.certFile without tls.keyFile: the client certificate cannot be used' });
  }
  if (c.homeAssistant.doorButton && !c.homeAssistant.enabled) {
    out.push({ field: 'diagnostics.homeAssistant.doorButton', message: 'doorButton without homeAssistant.enabled: no door button is offered' });
  }
  return out;
}
