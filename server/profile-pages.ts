import type { Profile, ProfilePage } from '../core/protocol/access.ts';
import type { EndpointInfo } from '../core/protocol/common.ts';
import { MAX_MESSAGE_BYTES } from '../core/protocol/validate.ts';

/**
 * Room for a page's lists: the limit (M2) less the envelope and the page's own fields
 * (`{"kind":"note","type":"profilePage","body":{"page":100000,"last":false,"siblings":[],"buddies":[]}}`
 * is under 110 bytes) with a margin.
 */
const PAGE_ROOM = MAX_MESSAGE_BYTES - 512;

const bytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/**
 * A12: the profile's siblings and buddies cut into pages that each fit the message limit,
 * whatever their number. Every entry is measured as JSON; a buddy with more online endpoints
 * than one page holds continues on the next page under the same header. At least one page
 * (the last) is returned, even for an empty profile.
 */
export function profilePages(profile: Pick<Profile, 'siblings' | 'buddies'>): ProfilePage[] {
  const pages: ProfilePage[] = [];
  let page: ProfilePage = { page: 1, last: false, siblings: [], buddies: [] };
  let used = 0;
  const turn = (): void => {
    pages.push(page);
    page = { page: page.page + 1, last: false, siblings: [], buddies: [] };
    used = 0;
  };
  // One entry costs its JSON and a comma.
  const fits = (size: number): boolean => used + size + 1 <= PAGE_ROOM;
  for (const s of profile.siblings) {
    const size = bytes(s);
    if (!fits(size)) turn();
    page.siblings.push(s);
    used += size + 1;
  }
  for (const b of profile.buddies) {
    const header = { account: b.account, displayName: b.displayName, endpoints: [] as EndpointInfo[] };
    const headerSize = bytes(header);
    const first = b.endpoints[0];
    // A header starts where it fits with its first endpoint, so no page ends on a bare header.
    if (!fits(headerSize + (first ? bytes(first) + 1 : 0))) turn();
    let part = { ...header, endpoints: [] as EndpointInfo[] };
    page.buddies.push(part);
    used += headerSize + 1;
    for (const e of b.endpoints) {
      const size = bytes(e);
      if (!fits(size)) {
        turn();
        part = { ...header, endpoints: [] };
        page.buddies.push(part);
        used += headerSize + 1;
      }
      part.endpoints.push(e);
      used += size + 1;
    }
  }
  pages.push(page);
  page.last = true;
  return pages;
}
