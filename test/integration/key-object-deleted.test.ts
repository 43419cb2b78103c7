/**
 * A key object deleted from the token behind the gateway's back (by an
 * operator's pkcs11-tool, in another process): that key answers
 * KeyUnavailableException, every other key keeps working, the circuit
 * breaker does not open, and the fault is counted for that key only.
 */
import { randomUUID } from 'node:crypto';
import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { defaultConfig, kmsClient, makeToken, startGateway, tableKey, type GatewayProcess } from '../support/gateway.js';
import { deleteKeyObject, metricSum as metric } from '../support/ops.js';
import { failure } from '../support/sdk-errors.js';

describe('a key object deleted from the token behind the gateway\'s back', function () {
  this.timeout(60_000);
  const gone = randomUUID();
  const kept = randomUUID();
  let gw: GatewayProcess;
  let kms: KMSClient;
  let blob: Uint8Array | undefined;

  before(async () => {
    const token = makeToken('kmsgw-dev');
    const config: Record<string, unknown> = {
      ...defaultConfig(),
      keys: [tableKey(gone, 'del-gone'), tableKey(kept, 'del-kept')],
    };
    // The schema's default (no session copies), which a production HSM runs with: config/default.json
    // turns copies on for SoftHSM2's speed, and a copy would outlive the token object (session-key-copies.test.ts).
    config['hsm'] = { ...(config['hsm'] as Record<string, unknown>), circuitFailureThreshold: 3, sessionKeyCopies: false };
    gw = await startGateway({ token, config });
    kms = kmsClient(gw.url);
    // Warm both keys on every lane's cache first: the gateway holds the object handles.
    for (let i = 0; i < 8; i++) {
      blob = (await kms.send(new EncryptCommand({ KeyId: gone, Plaintext: Buffer.from('before') }))).CiphertextBlob;
      await kms.send(new EncryptCommand({ KeyId: kept, Plaintext: Buffer.from('before') }));
    }
    deleteKeyObject(token, 'del-gone');
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(gw?.logs().slice(-3000));
  });

  after(() => gw?.stop());

  it('answers KeyUnavailableException (HTTP 500, retryable) to Encrypt and Decrypt with that key, every time', async () => {
    for (let i = 0; i < 10; i++) {
      const err = await failure(kms.send(new EncryptCommand({ KeyId: gone, Plaintext: Buffer.from('x') })));
      expect(err.name).to.equal('KeyUnavailableException');
      expect(err.$metadata.httpStatusCode).to.equal(500);
      expect(err.$fault).to.equal('server');
    }
    const err = await failure(kms.send(new DecryptCommand({ CiphertextBlob: blob })));
    expect(err.name).to.equal('KeyUnavailableException');
  });

  it('keeps serving every other key, and the gateway stays ready: one missing key does not open the circuit', async () => {
    const out = await kms.send(new EncryptCommand({ KeyId: kept, Plaintext: Buffer.from('still here') }));
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: out.CiphertextBlob }));
    expect(Buffer.from(back.Plaintext ?? []).toString()).to.equal('still here');
    expect((await fetch(`${gw.url}/readyz`)).status).to.equal(200);
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metric(text, 'kmsgw_hsm_circuit_open', {})).to.equal(0);
  });

  it('counts the fault for that key id and operation only', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metric(text, 'kmsgw_key_unavailable_total', { key_id: gone, operation: 'Encrypt' })).to.equal(10);
    expect(metric(text, 'kmsgw_key_unavailable_total', { key_id: gone, operation: 'Decrypt' })).to.equal(1);
    expect(metric(text, 'kmsgw_key_unavailable_total', { key_id: kept })).to.equal(0);
  });
});
