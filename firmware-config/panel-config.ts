import { z } from 'zod';
import { AccountName, EndpointId } from '../core/protocol/common.ts';

/**
 * The keys, LEDs and door relay of a handset or intercom (docs/serial-protocol.md). Absent from
 * the endpoint config = no panel. Unknown keys are refused.
 */

const Name = z.string().regex(/^[a-z0-9_]{1,12}$/, 'a button or LED name: 1-12 of a-z 0-9 _ (as the panel spells it)');

export const PanelDeviceConfig = z.discriminatedUnion('driver', [
  z.strictObject({
    driver: z.literal('serial'),
    /** The UART by path (/dev/ttyAMA0, /dev/serial/by-id/…); SerialPort.list() is not used. */
    path: z.string().min(1),
    baudRate: z.number().int().min(1200).max(1_000_000).default(115_200),
    dataBits: z.union([z.literal(5), z.literal(6), z.literal(7), z.literal(8)]).default(8),
    parity: z.enum(['none', 'even', 'odd', 'mark', 'space']).default('none'),
    stopBits: z.union([z.literal(1), z.literal(1.5), z.literal(2)]).default(1),
    /** Reopen back-off after the port went away (a USB adapter pulled), ms. */
    reconnectMinMs: z.number().int().min(10).max(60_000).default(100),
    reconnectMaxMs: z.number().int().min(10).max(600_000).default(2000),
    /** The host's heartbeat line, ms; 0 = none. */
    heartbeatMs: z.number().int().min(0).max(60_000).default(1000),
  }),
  /** No hardware: the lab's keyboard or a test presses the buttons. */
  z.strictObject({ driver: z.literal('simulated') }),
]);
export type PanelDeviceConfig = z.output<typeof PanelDeviceConfig>;

const Trigger = z.enum(['down', 'up', 'long']).default('down');
const binding = <A extends string, S extends z.ZodRawShape>(action: A, extra: S) =>
  z.strictObject({ button: Name, on: Trigger, action: z.literal(action), ...extra });

/** What a button does. `sweep`: push the active call to a same-account endpoint, or take a sibling's call back here. */
export const ButtonBinding = z.discriminatedUnion('action', [
  binding('sweep', {}),
  binding('answer', {}),
  binding('hangup', {}),
  binding('mute', {}),
  /**
   * Call an endpoint of a buddy account (`to`: the intercom's bell rings the handset), or a
   * household (`account`: every online endpoint of the account rings at once, H1). One of the two.
   */
  binding('call', { to: EndpointId.optional(), account: AccountName.optional(), doorRights: z.boolean().default(false) }),
  /** Ask the other party of the current call (the intercom) to open its door (D1). */
  binding('door', {}),
]);
export type ButtonBinding = z.output<typeof ButtonBinding>;

export const PanelConfig = z
  .strictObject({
    device: PanelDeviceConfig,
    buttons: z.array(ButtonBinding).max(32).default([]),
    leds: z
      .strictObject({
        /** Follows the call state: off, ringing, incall, sweeping, error. */
        call: Name.default('call'),
        /** On while muted. */
        mute: Name.optional(),
      })
      .default({ call: 'call' }),
    /** The door-opener relay on this panel (an intercom); absent = no relay here. */
    relay: z
      .strictObject({
        pulseMs: z.number().int().min(20).max(10_000).default(500),
        /** D3: no second pulse within this long of the last one. */
        guardMs: z.number().int().min(0).max(600_000).default(5000),
      })
      .optional(),
    /** Where the sweep button pushes, in order; default the endpoint's sweep.pushTo. */
    pushTo: z.array(EndpointId).optional(),
    /** How long the error pattern shows after a button action failed, ms. */
    errorMs: z.number().int().min(0).max(60_000).default(1500),
  })
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.buttons.forEach((b, i) => {
      const key = `${b.button}:${b.on}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['buttons', i], message: `button "${b.button}" on "${b.on}" is bound twice` });
      seen.add(key);
      if (b.action === 'call' && (b.to === undefined) === (b.account === undefined)) {
        ctx.addIssue({ code: 'custom', path: ['buttons', i], message: `call button "${b.button}": give either "to" (an endpoint id) or "account" (a household), not ${b.to === undefined ? 'neither' : 'both'}` });
      }
    });
    if (p.device.driver === 'serial' && p.device.reconnectMaxMs < p.device.reconnectMinMs) {
      ctx.addIssue({ code: 'custom', path: ['device', 'reconnectMaxMs'], message: `${p.device.reconnectMaxMs} is below reconnectMinMs ${p.device.reconnectMinMs}` });
    }
  });
export type PanelConfig = z.output<typeof PanelConfig>;
export type PanelConfigInput = z.input<typeof PanelConfig>;
