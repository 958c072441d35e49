import type { DeviceTopics } from './topics.ts';

/** What the Home Assistant door button sends on its command topic (HA's default payload_press). */
export const DOOR_BUTTON_PRESS = 'PRESS';

/** The retained discovery config topic of the door button (Q16). */
export function doorButtonConfigTopic(topics: DeviceTopics, discoveryPrefix: string): string {
  return `${discoveryPrefix}/button/${topics.deviceId}/door/config`;
}

/**
 * Home Assistant MQTT discovery (optional, Q14): the device appears with a call-state sensor and
 * an availability taken from `state`. Retained config messages under
 * `<discoveryPrefix>/sensor/<deviceId>/…` (the device id is a whole topic level, so a mosquitto
 * ACL pattern `%u` can confine it). With `doorButton` (an intercom with a relay that opted in,
 * Q16), a `button` entity too, whose presses come on `topics.doorButton`.
 */
export function discoveryMessages(
  topics: DeviceTopics,
  opts: { discoveryPrefix: string; label: string; kind: string; version: string; doorButton?: boolean },
): Array<{ topic: string; payload: Record<string, unknown> }> {
  const uid = `sweep_${topics.deviceId}`;
  const device = { identifiers: [uid], name: opts.label, model: `Sweep ${opts.kind}`, manufacturer: 'Sweep', sw_version: opts.version };
  const availability = {
    availability_topic: topics.state,
    availability_template: '{{ value_json.state }}',
    payload_available: 'online',
    payload_not_available: 'lost',
  };
  const door = opts.doorButton
    ? [
        {
          topic: doorButtonConfigTopic(topics, opts.discoveryPrefix),
          payload: {
            name: 'Open door',
            unique_id: `${uid}_door`,
            command_topic: topics.doorButton,
            payload_press: DOOR_BUTTON_PRESS,
            qos: 1,
            retain: false,
            icon: 'mdi:door-open',
            device,
            ...availability,
          },
        },
      ]
    : [];
  return [
    ...door,
    {
      topic: `${opts.discoveryPrefix}/sensor/${topics.deviceId}/call_state/config`,
      payload: {
        name: 'Call state',
        unique_id: `${uid}_call_state`,
        state_topic: topics.telemetry,
        value_template: "{{ value_json.call.state if value_json.call else 'idle' }}",
        icon: 'mdi:phone',
        device,
        ...availability,
      },
    },
    {
      topic: `${opts.discoveryPrefix}/sensor/${topics.deviceId}/cpu/config`,
      payload: {
        name: 'CPU',
        unique_id: `${uid}_cpu`,
        state_topic: topics.telemetry,
        value_template: '{{ value_json.cpu.percent }}',
        unit_of_measurement: '%',
        device,
        ...availability,
      },
    },
  ];
}
