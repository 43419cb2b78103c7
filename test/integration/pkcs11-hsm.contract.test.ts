import { readFileSync } from 'node:fs';
import { Pkcs11Hsm } from '../../src/hsm/pkcs11/pkcs11-hsm.js';
import { hsmContract } from '../contract/hsm-contract.js';

hsmContract('PKCS#11 on SoftHSM2', () =>
  Pkcs11Hsm.open({
    module: '/usr/lib/softhsm/libsofthsm2.so',
    token: { label: process.env['KMSGW_TEST_TOKEN_LABEL'] ?? 'kmsgw-test' },
    pin: readFileSync(process.env['KMSGW_TEST_PIN_FILE'] ?? '', 'utf8').trim(),
    sessionPoolSize: 2,
    log: { info() {}, warn() {}, error() {} },
  }),
);
