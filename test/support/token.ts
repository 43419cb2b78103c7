/**
 * Direct PKCS#11 access to a test token from the test process: what an
 * operator (or an attacker with the PIN) sees on the token, independent of
 * the gateway. SoftHSM2 reads SOFTHSM2_CONF at C_Initialize, so the library
 * is initialised for the call and finalised after it.
 */
import { readFileSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import { readDisposition } from '../../src/hsm/pkcs11/ckr.js';
import { SOFTHSM_MODULE, type TokenDir } from './gateway.js';

export type Handle = Buffer;

/**
 * Runs fn with a logged-in R/W session on `token`, then finalises the library
 * and restores SOFTHSM2_CONF. Refuses when the library is already
 * initialised in this process (it would be pointed at another token dir).
 */
export function withToken<T>(token: TokenDir, fn: (lib: pkcs11js.PKCS11, session: Handle) => T): T {
  const saved = process.env['SOFTHSM2_CONF'];
  process.env['SOFTHSM2_CONF'] = token.conf;
  const lib = new pkcs11js.PKCS11();
  try {
    lib.load(SOFTHSM_MODULE);
    try {
      lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if ((e as { code?: number }).code === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)
        throw new Error('SoftHSM is already initialised in this process (another test left it so): cannot switch to this token dir');
      throw e;
    }
    try {
      const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === token.label);
      if (slot === undefined) throw new Error(`no token labelled ${token.label} in ${token.dir}`);
      const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      try {
        lib.C_Login(session, pkcs11js.CKU_USER, readFileSync(token.pinFile, 'utf8').trim());
        return fn(lib, session);
      } finally {
        lib.C_CloseSession(session);
      }
    } finally {
      lib.C_Finalize();
    }
  } finally {
    if (saved === undefined) delete process.env['SOFTHSM2_CONF'];
    else process.env['SOFTHSM2_CONF'] = saved;
  }
}

/**
 * The CKA_LABEL of every object on `token`, in the order found (private
 * objects included: the session is logged in). A gateway may be running on
 * the token: it replaces its state mark in the background after a change, so
 * an object found here can be destroyed before its label is read
 * (CKR_OBJECT_HANDLE_INVALID, or CKR_BUFFER_TOO_SMALL when it went between
 * pkcs11js's two calls: src/hsm/pkcs11/ckr.ts, readDisposition); such an
 * object is no longer on the token and is left out.
 */
export function tokenLabels(token: TokenDir): string[] {
  return withToken(token, (lib, session) => {
    lib.C_FindObjectsInit(session, []);
    const handles: Handle[] = [];
    for (let batch = lib.C_FindObjects(session, 100); batch.length > 0; batch = lib.C_FindObjects(session, 100)) handles.push(...batch);
    lib.C_FindObjectsFinal(session);
    const labels: string[] = [];
    for (const h of handles) {
      let attr: pkcs11js.Attribute | undefined;
      try {
        [attr] = lib.C_GetAttributeValue(session, h, [{ type: pkcs11js.CKA_LABEL }]);
      } catch (e) {
        if (readDisposition(e) === 'handle') continue;
        throw e;
      }
      labels.push(Buffer.isBuffer(attr?.value) ? attr.value.toString('utf8') : String(attr?.value ?? ''));
    }
    return labels;
  });
}
