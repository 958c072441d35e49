import type { Logger } from './log.ts';

/**
 * A typed in-process event bus. Listeners belong to an owner; `removeOwner` drops all of an
 * owner's listeners when it stops. A throwing listener is logged, never fatal to the emitter.
 */
export class EventBus<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Array<{ owner: object; fn: (e: never) => void }>>();

  constructor(private readonly log?: Logger) {}

  on<K extends keyof Events>(owner: object, type: K, fn: (event: Events[K]) => void): void {
    const list = this.listeners.get(type) ?? [];
    list.push({ owner, fn: fn });
    this.listeners.set(type, list);
  }

  emit<K extends keyof Events>(type: K, event: Events[K]): void {
    for (const l of [...(this.listeners.get(type) ?? [])]) {
      try {
        (l.fn as (e: Events[K]) => void)(event);
      } catch (err) {
        this.log?.error({ err, event: String(type) }, 'event listener threw');
      }
    }
  }

  removeOwner(owner: object): void {
    for (const [type, list] of this.listeners) {
      this.listeners.set(
        type,
        list.filter((l) => l.owner !== owner),
      );
    }
  }

  listenerCount(): number {
    let n = 0;
    for (const list of this.listeners.values()) n += list.length;
    return n;
  }
}
