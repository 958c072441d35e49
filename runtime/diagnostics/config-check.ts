import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { networkInterfaces } from 'node:os';
import { delimiter, join } from 'node:path';
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

/** What a device check needs from the machine; tests replace parts of it. */
export interface MachineProbe {
  /** The machine's own addresses (os.networkInterfaces()). */
  addresses(): string[];
  /** Whether `path` exists (a serial port, possibly a symlink to one). */
  exists(path: string): Promise<boolean>;
  /** Loads a package the way the driver will; rejects with the loader's error. */
  loadPackage(name: string): Promise<void>;
  /** Whether an executable is on PATH. */
  onPath(cmd: string): Promise<boolean>;
}

export const machineProbe: MachineProbe = {
  addresses: () =>
    Object.values(networkInterfaces())
      .flat()
      .flatMap((a) => (a ? [a.address.toLowerCase()] : [])),
  exists: (path) => stat(path).then(
    () => true,
    () => false,
  ),
  loadPackage: async (name) => {
    createRequire(import.meta.url)(name);
  },
  onPath: async (cmd) => {
    for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
      if (await access(join(dir, cmd), constants.X_OK).then(() => true, () => false)) return true;
    }
    return false;
  },
};

/** The endpoint config fields a device check reads. */
export interface DeviceConfigView {
  network: { bindAddress: string };
  audio: { source: { driver: string; device?: string }; sink: { driver: string; device?: string } };
  panel?: { device: { driver: string; path?: string } } | undefined;
}

/**
 * What this machine lacks to run `config`: an address that is not one of its own, the package of
 * a driver the config names, a serial port that is not there. Each problem names the field and
 * what was allowed; `sweep config check` and `sweep endpoint` stop on them before any login.
 */
export async function deviceProblems(config: DeviceConfigView, probe: MachineProbe = machineProbe): Promise<ConfigProblem[]> {
  const out: ConfigProblem[] = [];
  const bind = config.network.bindAddress.toLowerCase();
  if (!['0.0.0.0', '::'].includes(bind)) {
    const own = probe.addresses();
    if (!own.includes(bind)) out.push({ field: 'network.bindAddress', message: `${config.network.bindAddress} is not an address of this machine; allowed: 0.0.0.0 (every address) or one of ${own.join(', ')}` });
  }
  if (config.audio.source.driver === 'alsa') {
    const why = await probe.loadPackage('alsa-capture').then(
      () => undefined,
      (err: unknown) => ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' ? 'is not installed' : `does not load (${String((err as Error).message).split('\n')[0]})`),
    );
    if (why) out.push({ field: 'audio.source.driver', message: `"alsa" needs the package alsa-capture, which ${why}; the device bundle holds it (npm run bundle:arm64), a checkout needs libasound2-dev before npm ci` });
  }
  if (config.audio.sink.driver === 'alsa' && !(await probe.onPath('aplay'))) {
    out.push({ field: 'audio.sink.driver', message: '"alsa" plays through aplay, which is not on PATH (apt-get install alsa-utils)' });
  }
  const panel = config.panel?.device;
  if (panel?.driver === 'serial' && panel.path !== undefined && !(await probe.exists(panel.path))) {
    out.push({ field: 'panel.device.path', message: `${panel.path} does not exist; allowed: the panel's serial port (ls /dev/ttyAMA* /dev/ttyUSB* /dev/serial/by-id/), or remove "panel"` });
  }
  return out;
}

/** Drivers that stand in for hardware: loud at an endpoint's start, since a device must not run them unnoticed. */
export function simulatedDrivers(config: DeviceConfigView): string[] {
  const out: string[] = [];
  if (config.audio.source.driver === 'simulated') out.push('audio.source.driver is "simulated": the microphone is a test tone, nobody is heard');
  if (config.audio.sink.driver === 'simulated') out.push('audio.sink.driver is "simulated": the speaker is silent, nothing is played');
  if (config.panel?.device.driver === 'simulated') out.push('panel.device.driver is "simulated": no buttons, LEDs or door relay are connected');
  return out;
}
