/**
 * A worker thread that copies one token key into session objects, and
 * destroys each copy again a few copies later, in a loop, in its own
 * session of the SoftHSM2 library the process has already initialised
 * (the gateway's lanes did):
 * what a lane does when it meets a key with sessionKeyCopies, over and over.
 * It never calls C_Logout or C_Finalize, which would end the lanes' login
 * and library too. Stops when `stop[0]` becomes 1 (Atomics.notify wakes
 * it); reports the copies made.
 *
 * workerData: { label, pinFile, tokenLabel, stop: Int32Array on a SharedArrayBuffer }
 */
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import pkcs11js from 'pkcs11js';
import { SOFTHSM_MODULE } from './gateway.js';

export interface CopyLoopData {
  label: string;
  pinFile: string;
  tokenLabel: string;
  stop: Int32Array;
}

const { label, pinFile, tokenLabel, stop } = workerData as CopyLoopData;
const lib = new pkcs11js.PKCS11();
lib.load(SOFTHSM_MODULE);
try {
  lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
} catch (e) {
  if ((e as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
}
const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === tokenLabel);
if (slot === undefined) throw new Error(`no token labelled ${tokenLabel}`);
const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
try {
  lib.C_Login(session, pkcs11js.CKU_USER, readFileSync(pinFile, 'utf8').trim());
} catch (e) {
  if ((e as { code?: number }).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw e;
}
lib.C_FindObjectsInit(session, [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_TOKEN, value: true },
  { type: pkcs11js.CKA_LABEL, value: label },
]);
const [key] = lib.C_FindObjects(session, 1);
lib.C_FindObjectsFinal(session);
if (key === undefined) throw new Error(`no token key labelled ${label}`);
let copies = 0;
parentPort?.postMessage({ started: true });
// A copy every half millisecond or so, at random moments: often enough that the lanes' finds
// meet copies in the making, seldom enough that a find tried again a few ms later meets another
// only by chance (as when lanes meet a key at once), not every time.
// Each copy lives for the next few copies, as a lane's copy stays while the lane serves: a find
// that met it in the making can still read its attributes afterwards.
const alive: Buffer[] = [];
const destroy = (copy: Buffer): void => {
  try {
    lib.C_DestroyObject(session, copy);
  } catch (e) {
    // SoftHSM 2.6.1 files a copy that another session's find met in the making under that
    // session's handle (CKA_TOKEN had become false after the match); when that session
    // closes, the handle goes with it. The copy is gone from this loop's point of view.
    if ((e as { code?: number }).code !== pkcs11js.CKR_OBJECT_HANDLE_INVALID) throw e;
  }
};
while (Atomics.wait(stop, 0, 0, 0.2 + Math.random() * 0.6) === 'timed-out') {
  alive.push(lib.C_CopyObject(session, key, [{ type: pkcs11js.CKA_TOKEN, value: false }]));
  copies++;
  if (alive.length > 8) destroy(alive.shift()!);
}
alive.forEach(destroy);
lib.C_CloseSession(session);
parentPort?.postMessage({ copies });
