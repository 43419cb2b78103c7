/**
 * A burst of requests for a key that the gateway's lanes have not used
 * yet, on a token that holds hundreds of keys. Each lane learns a key on
 * its first call for it, on that call's deadline, and one lane thread
 * carries several lanes, so the lanes of a burst learn one after the
 * other. When a lane learned every key it lacked in one pass (a scan of
 * every key object), a burst of 32 Encrypts after 300 CreateKey made the
 * later calls pass the deadline; their lanes were quarantined and
 * recovered, which forgets what they learned, the circuit opened, and
 * 1,328 of 2,879 answers in 5 s were DependencyTimeoutException (by hand,
 * 400 ms deadline). The same burst with the key used before the CreateKey
 * answered everything. A lane now learns only the key a call needs (one
 * find; guarded-hsm.ts, learn).
 */
import { CreateKeyCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { defaultConfig, kmsClient, startGateway, type GatewayProcess } from '../support/gateway.js';

describe('a burst of first uses of a key on a token with hundreds of keys (SoftHSM2)', function () {
  this.timeout(180_000);
  let gw: GatewayProcess | undefined;

  after(async () => {
    await gw?.stop();
  });

  it('when 300 keys were created before alias/demo-aes was first used, 32 concurrent Encrypts of it answer no DependencyTimeoutException (400 ms deadline)', async () => {
    const config = defaultConfig();
    (config['hsm'] as Record<string, unknown>)['deadlineMs'] = 400;
    gw = await startGateway({ config });
    const kms = kmsClient(gw.url);
    let made = 0;
    await Promise.all(
      [0, 1, 2, 3].map(async () => {
        while (made < 300) {
          made++;
          await kms.send(new CreateKeyCommand({ Description: 'first-use burst' }));
        }
      }),
    );
    const answers: Record<string, number> = {};
    const end = Date.now() + 3_000;
    const plaintext = Buffer.alloc(4096, 1);
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (Date.now() < end) {
          let answer = 'ok';
          try {
            await kms.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: plaintext }));
          } catch (e) {
            answer = (e as Error).name;
          }
          answers[answer] = (answers[answer] ?? 0) + 1;
        }
      }),
    );
    expect(Object.keys(answers), JSON.stringify(answers)).to.deep.equal(['ok']);
    expect(answers['ok']).to.be.greaterThan(100);
  });
});
