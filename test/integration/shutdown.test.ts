import { expect } from 'chai';
import { DecryptCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { kmsClient, startGateway } from '../support/gateway.js';

describe('stopping the gateway', function () {
  this.timeout(60_000);

  it('on SIGTERM, finishes the requests in flight on the token, then exits 0', async () => {
    const gw = await startGateway();
    const kms = kmsClient(gw.url);
    const { CiphertextBlob } = await kms.send(
      new EncryptCommand({ KeyId: 'alias/demo-rsa-4096', EncryptionAlgorithm: 'RSAES_OAEP_SHA_256', Plaintext: Buffer.from('in flight') }),
    );
    // RSA-4096 decryption is the slowest thing the token does (~6 ms each on SoftHSM2).
    const calls = Array.from({ length: 40 }, () =>
      kms
        .send(new DecryptCommand({ KeyId: 'alias/demo-rsa-4096', EncryptionAlgorithm: 'RSAES_OAEP_SHA_256', CiphertextBlob }))
        .then((r) => Buffer.from(r.Plaintext ?? []).toString()),
    );
    await new Promise((r) => setTimeout(r, 30));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      gw.child.once('exit', (code, signal) => done({ code, signal })),
    );
    gw.child.kill('SIGTERM');
    const results = await Promise.allSettled(calls);
    const { code, signal } = await exited;
    expect(signal, gw.logs()).to.equal(null);
    expect(code, gw.logs()).to.equal(0);
    const answered = results.filter((r) => r.status === 'fulfilled');
    for (const r of answered) expect((r as PromiseFulfilledResult<string>).value).to.equal('in flight');
    expect(answered.length).to.be.greaterThan(0);
  });
});
