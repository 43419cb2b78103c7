/**
 * Object creation tried again after SoftHSM2's transient CKR_GENERAL_ERROR.
 *
 * SoftHSM 2.6.1 now and then answers C_GenerateKey, C_GenerateKeyPair or
 * C_CreateObject with CKR_GENERAL_ERROR when other sessions (threads or
 * processes) write token objects at the same moment: writing the new
 * object's attributes to its file fails (SoftHSMv2 issue #573,
 * ObjectFile::setAttribute; only partly fixed after 2.6.1), and the library
 * removes the half-made object before it answers. Measured here: 1 to 3 of
 * 150 CreateKey calls from 4 clients on a 2-worker gateway started a moment
 * before, each a 500 to the client.
 *
 * The creation is tried again only when the token shows that nothing was
 * left behind (`leftBehind` finds no object of that label): the gateway
 * never destroys what it finds, because on a shared token that object may be
 * another gateway's key. Any other code, or an object found, is thrown as
 * it was.
 */
import { CKR, ckrCode } from './ckr.js';

export const CREATE_TRIES = 3;

export interface CreateRetryHooks {
  /** True when an object the failed call may have made is on the token. */
  leftBehind(): boolean;
  /** Pause before the next try (a lane thread may block; never the event loop). */
  pause(ms: number): void;
  /** Called before each new try, with the failed try's number. */
  retrying?(attempt: number): void;
}

export function createWithRetry<T>(create: () => T, hooks: CreateRetryHooks): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return create();
    } catch (e) {
      if (attempt >= CREATE_TRIES || ckrCode(e) !== CKR.GENERAL_ERROR || hooks.leftBehind()) throw e;
      hooks.retrying?.(attempt);
      hooks.pause(2 + Math.random() * 8);
    }
  }
}
