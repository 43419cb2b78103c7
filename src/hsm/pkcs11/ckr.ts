/**
 * CKR return codes, translated in one place and by number only (never by a
 * pkcs11js message text). Each code gets a disposition that tells the pool
 * what to do with the session that saw it:
 * - `data`: the input was bad (ciphertext, tag). The session is kept; the
 *   client gets InvalidCiphertextException.
 * - `handle`: the object handle is stale (key destroyed or re-created
 *   behind our back). Look the object up again once, then KeyUnavailable.
 * - `session`: this session is broken (closed, operation left active,
 *   logged out). Discard it; the request gets KeyUnavailableException.
 * - `token`: the device or token is gone (removed, device error, library
 *   not initialised, PIN refused). Discard the session; the token needs a
 *   new login or C_Initialize (done by the recovery work of the fault issue).
 * - `bug`: the gateway called the token wrongly. KMSInternalException.
 */
import pkcs11js from 'pkcs11js';

export type Disposition = 'data' | 'handle' | 'session' | 'token' | 'bug';

const C = pkcs11js as unknown as Record<string, number>;

const byCode = new Map<number, Disposition>();
function set(d: Disposition, names: string[]): void {
  for (const n of names) {
    const code = C[n];
    if (typeof code === 'number') byCode.set(code, d);
  }
}

set('data', [
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_DATA_INVALID',
  'CKR_DATA_LEN_RANGE',
]);
set('handle', ['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']);
set('session', [
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_OPERATION_ACTIVE',
  'CKR_OPERATION_NOT_INITIALIZED',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_SESSION_COUNT',
]);
set('token', [
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_PIN_INCORRECT',
  'CKR_PIN_LOCKED',
  'CKR_PIN_EXPIRED',
  'CKR_SLOT_ID_INVALID',
  'CKR_HOST_MEMORY',
  'CKR_FUNCTION_FAILED',
]);
set('bug', [
  'CKR_ARGUMENTS_BAD',
  'CKR_MECHANISM_INVALID',
  'CKR_MECHANISM_PARAM_INVALID',
  'CKR_KEY_TYPE_INCONSISTENT',
  'CKR_KEY_FUNCTION_NOT_PERMITTED',
  'CKR_BUFFER_TOO_SMALL',
  'CKR_TEMPLATE_INCOMPLETE',
  'CKR_TEMPLATE_INCONSISTENT',
  'CKR_ATTRIBUTE_VALUE_INVALID',
]);

export const CKR = {
  GENERAL_ERROR: C['CKR_GENERAL_ERROR'] as number,
  CRYPTOKI_ALREADY_INITIALIZED: C['CKR_CRYPTOKI_ALREADY_INITIALIZED'] as number,
  USER_ALREADY_LOGGED_IN: C['CKR_USER_ALREADY_LOGGED_IN'] as number,
  OPERATION_ACTIVE: C['CKR_OPERATION_ACTIVE'] as number,
  BUFFER_TOO_SMALL: C['CKR_BUFFER_TOO_SMALL'] as number,
};

/**
 * C_Login codes that mean the PIN itself was refused. Trying the same PIN
 * again cannot succeed and, on most HSMs, counts toward locking the user.
 */
const PIN_REFUSED = new Set(
  ['CKR_PIN_INCORRECT', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE', 'CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED'].map((n) => C[n]).filter((c): c is number => typeof c === 'number'),
);

export function isPinRefused(err: unknown): boolean {
  const code = ckrCode(err);
  return code !== undefined && PIN_REFUSED.has(code);
}

/**
 * C_CopyObject codes that mean the token will not make a session copy of
 * this object (CKA_COPYABLE false, no C_CopyObject at all, CKA_TOKEN not
 * changeable in a copy): the token object is used instead.
 */
const COPY_REFUSED = new Set(
  ['CKR_FUNCTION_NOT_SUPPORTED', 'CKR_ATTRIBUTE_READ_ONLY', 'CKR_ATTRIBUTE_TYPE_INVALID', 'CKR_ATTRIBUTE_VALUE_INVALID', 'CKR_TEMPLATE_INCONSISTENT']
    .map((n) => C[n])
    .filter((c): c is number => typeof c === 'number')
    // CKR_ACTION_PROHIBITED (PKCS#11 2.40, 0x1B) is not among pkcs11js 2.1.7's exports.
    .concat([0x1b]),
);

export function isCopyRefused(err: unknown): boolean {
  const code = ckrCode(err);
  return code !== undefined && COPY_REFUSED.has(code);
}

/** The numeric CKR code of a pkcs11js error, or undefined for anything else. */
export function ckrCode(err: unknown): number | undefined {
  if (err instanceof pkcs11js.Pkcs11Error && typeof err.code === 'number') return err.code;
  return undefined;
}

export function ckrName(code: number): string {
  for (const [k, v] of Object.entries(C)) if (k.startsWith('CKR_') && v === code) return k;
  return `CKR_0x${code.toString(16)}`;
}

/**
 * The disposition of a failed call. `decrypting` matters for one quirk:
 * SoftHSM 2.6.1 answers a failed AES-GCM tag check (and a bad RSA decryption)
 * with CKR_GENERAL_ERROR, where other tokens say CKR_ENCRYPTED_DATA_INVALID;
 * during a decrypt it is a data error, elsewhere a device fault.
 */
export function disposition(err: unknown, decrypting: boolean): Disposition {
  const code = ckrCode(err);
  if (code === undefined) return 'bug';
  if (code === CKR.GENERAL_ERROR) return decrypting ? 'data' : 'token';
  return byCode.get(code) ?? 'token';
}

/**
 * The disposition of an error from C_GetAttributeValue on a token object.
 * pkcs11js sizes the value buffers itself from a first call, so
 * CKR_BUFFER_TOO_SMALL from its second call means the object changed between
 * the two: another process destroyed it and SoftHSM 2.6.1 answered the
 * second call for an object that is being replaced (pkcs11js 2.1.7 then read
 * from NULL and crashed the process; patches/pkcs11js+2.1.7.patch answers
 * CKR_BUFFER_TOO_SMALL instead). The gateway never changes an object in
 * place, so that is the object going away, as CKR_OBJECT_HANDLE_INVALID.
 */
export function readDisposition(err: unknown): Disposition {
  return ckrCode(err) === CKR.BUFFER_TOO_SMALL ? 'handle' : disposition(err, false);
}
