import t from 'tap';
import { canTransition, transition } from '../../core/session/call-state.ts';
import { SweepError } from '../../core/errors.ts';

void t.test('transition through a call, a sweep and a rollback follows C3', async (t) => {
  let s = transition('idle', 'invite');
  t.equal(s, 'ringing');
  s = transition(s, 'answer');
  t.equal(s, 'active');
  s = transition(s, 'giveAway');
  t.equal(s, 'sweeping');
  s = transition(s, 'rollback');
  t.equal(s, 'active', 'a rolled back holder is active, not on hold (S8)');
  t.equal(transition(transition(s, 'giveAway'), 'moved'), 'ended');
});

void t.test('transition not allowed names the state and what was allowed', async (t) => {
  let caught: unknown;
  try {
    transition('idle', 'answer');
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof SweepError);
  t.equal((caught as SweepError).code, 'BAD_STATE');
  t.match((caught as SweepError).message, /call is idle: answer not allowed \(allowed: invite, takeOver, resumed\)/);
  t.notOk(canTransition('ended', 'answer'));
  t.equal(transition('idle', 'takeOver'), 'sweeping');
  t.equal(transition('sweeping', 'abandon'), 'ended');
});
