import { readFileSync } from 'node:fs';
import { openPkcs11Hsm } from '../../src/hsm/pkcs11/open.js';
import { hsmContract } from '../contract/hsm-contract.js';

// The gateway's HSM as it runs: GuardedHsm over three worker-thread lanes, each its own
// PKCS#11 instance; once with the token objects, once with each lane's session copies of
// the keys (hsm.sessionKeyCopies). (Pkcs11Hsm is not run on the main thread here:
// SoftHSM2 2.6.1 leaves OpenSSL errors on the calling thread's queue, which then break
// this test's own node:crypto calls; the gateway never calls the token from the main thread.)
for (const sessionKeyCopies of [false, true]) {
  hsmContract(`GuardedHsm over 3 PKCS#11 worker lanes on SoftHSM2${sessionKeyCopies ? ' using session copies of keys' : ''}`, () =>
    openPkcs11Hsm(
      {
        module: '/usr/lib/softhsm/libsofthsm2.so',
        token: { label: process.env['KMSGW_TEST_TOKEN_LABEL'] ?? 'kmsgw-test' },
        pin: { file: process.env['KMSGW_TEST_PIN_FILE'] ?? '' },
        sessionPoolSize: 3,
        sessionKeyCopies,
        deadlineMs: 5000,
        circuitFailureThreshold: 5,
        probeIntervalMs: 200,
        readyCacheMs: 1000,
      },
      readFileSync(process.env['KMSGW_TEST_PIN_FILE'] ?? '', 'utf8').trim(),
      { info() {}, warn() {}, error() {} },
    ),
  );
}
