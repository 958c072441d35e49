import type { Clock } from '../clock.ts';
import type { SweepStep } from '../session/events.ts';

/** A sweep's steps on this endpoint, told on the bus as they happen (the timeline of Q-events). */
export class Timeline {
  readonly startedAtMono: number;
  readonly steps: SweepStep[] = [];
  constructor(
    private readonly clock: Clock,
    private readonly emit: (step: string, ms: number) => void,
    startedAtMono?: number,
  ) {
    this.startedAtMono = startedAtMono ?? clock.mono();
  }
  mark(step: string): void {
    const ms = Math.round((this.clock.mono() - this.startedAtMono) * 100) / 100;
    this.steps.push({ step, ms });
    this.emit(step, ms);
  }
}
