import t from 'tap';
import { profilePages } from '../../server/profile-pages.ts';
import { ProfileAssembler, ProfilePage, type Profile } from '../../core/protocol/access.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import { MAX_MESSAGE_BYTES } from '../../core/protocol/validate.ts';

const noteBytes = (page: ProfilePage): number => Buffer.byteLength(JSON.stringify({ kind: 'note', type: 'profilePage', body: page }));

/** The largest an endpoint entry can be: 64-character ids and a label of control characters (6 bytes each in JSON). */
function worstEndpoint(account: string, n: number): EndpointInfo {
  return { endpointId: `${String(n).padStart(8, '0')}${'e'.repeat(56)}`, account, kind: 'deskphone', label: '\u0001'.repeat(64), online: true };
}

function empty(): Profile {
  return { account: 'door', displayName: 'Door', endpointId: 'door-1', siblings: [], buddies: [] };
}

void t.test('profilePages with the largest entries keeps every page within the message limit and loses nothing (issue 12, A12)', async (t) => {
  const account = 'b'.repeat(64);
  const buddies = [
    { account, displayName: '\u0002'.repeat(64), endpoints: Array.from({ length: 100 }, (_, i) => worstEndpoint(account, i)) },
    { account: 'small', displayName: 'S', endpoints: [] },
  ];
  const siblings = Array.from({ length: 40 }, (_, i) => worstEndpoint('door', i));
  const pages = profilePages({ siblings, buddies });
  t.ok(pages.length > 3, `${pages.length} pages`);
  for (const p of pages) {
    t.ok(noteBytes(p) <= MAX_MESSAGE_BYTES, `page ${p.page}: ${noteBytes(p)} bytes`);
    t.ok(ProfilePage.safeParse(p).success, `page ${p.page} passes its schema`);
  }
  const assembler = new ProfileAssembler(empty());
  pages.forEach((p, i) => t.equal(assembler.add(p), i === pages.length - 1));
  t.same(assembler.profile.siblings, siblings);
  t.same(assembler.profile.buddies, buddies, 'a buddy split over pages is joined again');
});

void t.test('profilePages of an empty profile is one last page (A12)', async (t) => {
  t.same(profilePages({ siblings: [], buddies: [] }), [{ page: 1, last: true, siblings: [], buddies: [] }]);
});

void t.test('ProfileAssembler add with a page out of order or after the last throws INVALID_MESSAGE naming the page (A12)', async (t) => {
  const a = new ProfileAssembler(empty());
  t.throws(() => a.add({ page: 2, last: false, siblings: [], buddies: [] }), { code: 'INVALID_MESSAGE', message: 'profilePage.page: 2, expected 1' });
  const b = new ProfileAssembler(empty());
  b.add({ page: 1, last: true, siblings: [], buddies: [] });
  t.ok(b.done);
  t.throws(() => b.add({ page: 2, last: true, siblings: [], buddies: [] }), { code: 'INVALID_MESSAGE', message: /none after the last page/ });
});
