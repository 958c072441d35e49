import { ProfileAssembler, type LoginResult, type ProfilePage } from './access.ts';
import { SweepError, toSweepError } from '../errors.ts';
import type { Clock } from '../clock.ts';

/**
 * A12 on the client: a large building's profile follows the login answer in `profilePage`
 * notes; `whole` resolves with the login result once the last page is in, or rejects on a page
 * out of order, a failure of the connection, or the deadline. The device and the phone page both
 * collect with it.
 */
export class ProfileCollector {
  readonly whole: Promise<LoginResult>;
  private readonly assembler: ProfileAssembler;
  private end!: (err?: SweepError) => void;

  constructor(result: LoginResult, clock: Clock, timeoutMs: number) {
    this.assembler = new ProfileAssembler(result.profile);
    this.whole = new Promise<LoginResult>((resolve, reject) => {
      const timer = clock.setTimeout(() => this.end(new SweepError('TIMEOUT', `login: the profile's pages did not all arrive within ${timeoutMs} ms`)), timeoutMs);
      let ended = false;
      this.end = (err) => {
        if (ended) return;
        ended = true;
        clock.clear(timer);
        if (err) reject(err);
        else {
          delete result.profileFollows;
          resolve(result);
        }
      };
    });
  }

  add(page: ProfilePage): void {
    try {
      if (this.assembler.add(page)) this.end();
    } catch (err) {
      this.end(toSweepError(err));
    }
  }

  fail(err: SweepError): void {
    this.end(err);
  }
}
