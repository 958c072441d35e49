/**
 * The topic tree of one device (docs/mqtt.md, rules Q1-Q3):
 *
 *   <prefix>/<device>/state                 retained: online | offline | lost (last will)
 *   <prefix>/<device>/telemetry             periodic sample
 *   <prefix>/<device>/event/<type>          call.*, sweep.*, access.*, diagnostics.*
 *   <prefix>/<device>/cmd                   command requests (the device subscribes)
 *   <prefix>/<device>/res[/<anything>]      command responses
 *   <prefix>/<device>/shell/<session>/in    shell input (signed, the device subscribes)
 *   <prefix>/<device>/shell/<session>/out   shell output
 *   <prefix>/<device>/ha/door               Home Assistant door button presses (opt-in, Q16)
 *
 * Every topic a device publishes to is under <prefix>/<device>/ (plus Home Assistant discovery),
 * so a broker ACL confines each device with one pattern.
 */
export class DeviceTopics {
  readonly base: string;
  constructor(
    readonly prefix: string,
    readonly deviceId: string,
  ) {
    this.base = `${prefix}/${deviceId}`;
  }
  get state(): string {
    return `${this.base}/state`;
  }
  get telemetry(): string {
    return `${this.base}/telemetry`;
  }
  event(type: string): string {
    return `${this.base}/event/${type}`;
  }
  get command(): string {
    return `${this.base}/cmd`;
  }
  get response(): string {
    return `${this.base}/res`;
  }
  /** Q3: a response goes to the requested topic only if it lies under this device's `res`. */
  isOwnResponseTopic(topic: string): boolean {
    return (topic === this.response || topic.startsWith(`${this.response}/`)) && !/[+#]/.test(topic);
  }
  shellIn(session: string): string {
    return `${this.base}/shell/${session}/in`;
  }
  shellOut(session: string): string {
    return `${this.base}/shell/${session}/out`;
  }
  /** Q16: the Home Assistant door button's command topic (the device subscribes when opted in). */
  get doorButton(): string {
    return `${this.base}/ha/door`;
  }
  get shellInFilter(): string {
    return `${this.base}/shell/+/in`;
  }
  /** The shell session id of a `shell/<id>/in` topic, or undefined. */
  shellSessionOf(topic: string): string | undefined {
    const m = /^shell\/([A-Za-z0-9_-]{1,64})\/in$/.exec(topic.slice(this.base.length + 1));
    return topic.startsWith(`${this.base}/`) && m ? m[1] : undefined;
  }
}

/** Filters for watching one device or the whole fleet under `prefix`. */
export function watchFilters(prefix: string, deviceId?: string): string[] {
  const d = deviceId ?? '+';
  return [`${prefix}/${d}/state`, `${prefix}/${d}/telemetry`, `${prefix}/${d}/event/#`];
}
