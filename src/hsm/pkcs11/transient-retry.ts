/**
 * Calls tried again after SoftHSM2's transient CKR_GENERAL_ERROR, a few ms
 * apart on the lane thread (never the event loop). Nothing else is retried.
 *
 * - Finds (C_FindObjectsInit): SoftHSM 2.6.1 reads every token object
 *   during the find, and answered CKR_GENERAL_ERROR when another process
 *   was rewriting one of them at that moment (seen while the state mark
 *   was changed in place; the gateway no longer changes any object in
 *   place, so this guards against other software on the token). A find
 *   changes nothing, so trying again is always safe.
 * - Creations (C_GenerateKey, C_GenerateKeyPair, C_CreateObject): SoftHSM
 *   2.6.1 now and then fails them when other sessions (threads or
 *   processes) write token objects at the same moment: writing the new
 *   object's attributes to its file fails (SoftHSMv2 issue #573,
 *   ObjectFile::setAttribute; only partly fixed after 2.6.1), and the
 *   library removes the half-made object before it answers. Measured here:
 *   1 to 3 of 150 CreateKey calls from 4 clients on a 2-worker gateway
 *   started a moment before, each a 500 to the client. A creation is tried
 *   again only when the token shows that nothing was left behind
 *   (`leftBehind` finds no object of that label): the gateway never
 *   destroys what it finds, because on a shared token that object may be
 *   another gateway's key.
 * - Finds that match a key's session copy in the making: SoftHSM 2.6.1's
 *   C_CopyObject creates the copy with every attribute of the token object,
 *   CKA_TOKEN true included, and applies the template's CKA_TOKEN false
 *   only afterwards, so a find by label in another session of the same
 *   process matches the copy too for that moment (measured: 1 of 130 to
 *   1 of 830 finds while another thread copies the key without pause). With
 *   sessionKeyCopies, lanes meeting a key at once make their copies at
 *   once; a second match is looked for again before it counts as two
 *   objects with the key's label/id.
 */
import { CKR, ckrCode } from './ckr.js';

export const FIND_TRIES = 4;
export const CREATE_TRIES = 3;
export const AMBIGUOUS_FIND_TRIES = 4;

export interface RetryHooks {
  /** Pause before the next try (a lane thread may block; never the event loop). */
  pause(ms: number): void;
  /** Called before each new try, with the failed try's number. */
  retrying?(attempt: number): void;
}

export interface CreateRetryHooks extends RetryHooks {
  /** True when an object the failed call may have made is on the token. */
  leftBehind(): boolean;
}

/** A few ms, jittered so that lanes retrying at once do not meet again. */
function retryPauseMs(): number {
  return 2 + Math.random() * 8;
}

/** Calls `op` up to `tries` times while it throws CKR_GENERAL_ERROR and `mayRetry` agrees; any other error is thrown as it was. */
export function retryGeneralError<T>(op: () => T, tries: number, hooks: RetryHooks, mayRetry: () => boolean = () => true): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return op();
    } catch (e) {
      if (attempt >= tries || ckrCode(e) !== CKR.GENERAL_ERROR || !mayRetry()) throw e;
      hooks.retrying?.(attempt);
      hooks.pause(retryPauseMs());
    }
  }
}

/** An object creation, tried again only while the failed tries left nothing on the token. */
export function createWithRetry<T>(create: () => T, hooks: CreateRetryHooks): T {
  return retryGeneralError(create, CREATE_TRIES, hooks, () => !hooks.leftBehind());
}

/**
 * A find that must match at most one object: run again, after a pause,
 * while it matches more than one and `mayRetry` agrees. Returns the last
 * try's hits; more than one left after `tries` is a real ambiguity.
 */
export function findAtMostOne<T>(find: () => T[], tries: number, hooks: RetryHooks, mayRetry: () => boolean = () => true): T[] {
  for (let attempt = 1; ; attempt++) {
    const hits = find();
    if (hits.length <= 1 || attempt >= tries || !mayRetry()) return hits;
    hooks.retrying?.(attempt);
    hooks.pause(retryPauseMs());
  }
}
