/**
 * Limit/Marker paging as the KMS List* operations do it. The marker is
 * opaque to clients: here the base64url of the last item's id on the page.
 * A marker that does not name an item (tampered, or the item is gone) is
 * InvalidMarkerException, as AWS answers a marker it did not issue.
 */
import { InvalidMarkerException } from '../errors.js';

export interface Page<T> {
  items: T[];
  truncated: boolean;
  nextMarker?: string;
}

export function paginate<T>(all: readonly T[], idOf: (item: T) => string, limit: number, marker: string | undefined): Page<T> {
  let start = 0;
  if (marker !== undefined) {
    const id = Buffer.from(marker, 'base64url').toString('utf8');
    const at = all.findIndex((item) => idOf(item) === id);
    if (at < 0 || Buffer.from(id, 'utf8').toString('base64url') !== marker)
      throw new InvalidMarkerException('Invalid marker');
    start = at + 1;
  }
  const items = all.slice(start, start + limit);
  const truncated = start + limit < all.length;
  const last = items[items.length - 1];
  return truncated && last !== undefined
    ? { items, truncated, nextMarker: Buffer.from(idOf(last), 'utf8').toString('base64url') }
    : { items, truncated };
}
