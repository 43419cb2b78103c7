/**
 * helmet's response headers, computed once. helmet's default policy is
 * static (no per-request nonce), so the headers its middlewares set are the
 * same for every answer; the KMS listener (kms-listener.ts) sends them with
 * each answer instead of running helmet's 13 middlewares per request. The
 * express app still mounts helmet() itself, so both paths send what helmet
 * decides, from the one dependency.
 */
import helmet from 'helmet';

/** [name, value] pairs, in the order helmet sets them. */
export function securityHeaders(): Array<[string, string]> {
  const headers = new Map<string, [string, string]>();
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.set(name.toLowerCase(), [name, Array.isArray(value) ? value.join(', ') : String(value)]);
    },
    removeHeader(name: string) {
      headers.delete(name.toLowerCase());
    },
    getHeader(name: string) {
      return headers.get(name.toLowerCase())?.[1];
    },
  };
  let done = false;
  let failure: unknown;
  helmet()({} as never, res as never, (err?: unknown) => {
    done = true;
    failure = err;
  });
  // helmet's default middlewares are synchronous; anything else is a change to look at.
  if (!done || failure !== undefined) throw new Error('helmet() did not set its headers synchronously');
  return [...headers.values()];
}
