/**
 * The newcomer's tour with the real AWS CLI: create-key, create-alias,
 * generate-data-key, re-encrypt, disable-key, schedule-key-deletion against
 * a gateway as `make run` starts it, with what AWS would answer.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { awsCliEnv, keyArn, startGateway, type GatewayProcess } from '../support/gateway.js';

interface CliResult {
  code: number;
  json: Record<string, unknown>;
  stderr: string;
}

describe('a newcomer touring the key lifecycle with the AWS CLI', function () {
  this.timeout(90_000);
  let gw: GatewayProcess;
  const dir = mkdtempSync(join(process.env['KMSGW_TEST_TMP'] ?? tmpdir(), 'cli-'));

  function aws(...args: string[]): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      execFile('aws', ['kms', ...args, '--endpoint-url', gw.url, '--output', 'json'], { env: awsCliEnv(), timeout: 30_000 }, (err, stdout, stderr) => {
        if (err !== null && typeof err.code !== 'number') return reject(err);
        resolve({ code: err === null ? 0 : (err.code as number), json: stdout.trim() === '' ? {} : (JSON.parse(stdout) as Record<string, unknown>), stderr });
      });
    });
  }

  before(async () => {
    gw = await startGateway();
  });
  after(() => gw?.stop());

  let keyId = '';
  let dataKeyBlob = '';
  let dataKeyPlaintext = '';

  it('aws kms create-key answers the new key\'s metadata: enabled, symmetric, ENCRYPT_DECRYPT', async () => {
    const r = await aws('create-key', '--description', 'made by the CLI');
    expect(r.code, r.stderr).to.equal(0);
    const meta = r.json['KeyMetadata'] as Record<string, unknown>;
    keyId = meta['KeyId'] as string;
    expect(meta['Arn']).to.equal(keyArn(keyId));
    expect(meta['KeyState']).to.equal('Enabled');
    expect(meta['KeySpec']).to.equal('SYMMETRIC_DEFAULT');
    expect(meta['KeyUsage']).to.equal('ENCRYPT_DECRYPT');
    expect(meta['Description']).to.equal('made by the CLI');
  });

  it('aws kms create-alias names it, silently as AWS does', async () => {
    const r = await aws('create-alias', '--alias-name', 'alias/cli-tour', '--target-key-id', keyId);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json).to.deep.equal({});
  });

  it('aws kms generate-data-key through the alias gives a 32-byte key and its ciphertext', async () => {
    const r = await aws('generate-data-key', '--key-id', 'alias/cli-tour', '--key-spec', 'AES_256', '--encryption-context', 'app=tour');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json['KeyId']).to.equal(keyArn(keyId));
    dataKeyPlaintext = r.json['Plaintext'] as string;
    dataKeyBlob = r.json['CiphertextBlob'] as string;
    expect(Buffer.from(dataKeyPlaintext, 'base64')).to.have.length(32);
  });

  it('aws kms re-encrypt moves the data key to the demo key, and decrypt gives the same key back', async () => {
    const blobFile = join(dir, 'dk.bin');
    writeFileSync(blobFile, Buffer.from(dataKeyBlob, 'base64'));
    const r = await aws(
      're-encrypt',
      '--ciphertext-blob', `fileb://${blobFile}`,
      '--source-encryption-context', 'app=tour',
      '--destination-key-id', 'alias/demo-aes',
      '--destination-encryption-context', 'app=moved',
    );
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json['SourceKeyId']).to.equal(keyArn(keyId));
    expect(r.json['KeyId']).to.equal(keyArn('0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01'));
    const moved = join(dir, 'moved.bin');
    writeFileSync(moved, Buffer.from(r.json['CiphertextBlob'] as string, 'base64'));
    const d = await aws('decrypt', '--ciphertext-blob', `fileb://${moved}`, '--encryption-context', 'app=moved');
    expect(d.code, d.stderr).to.equal(0);
    expect(d.json['Plaintext']).to.equal(dataKeyPlaintext);
  });

  it('aws kms disable-key makes the key refuse work with DisabledException', async () => {
    expect((await aws('disable-key', '--key-id', keyId)).code).to.equal(0);
    const r = await aws('generate-data-key', '--key-id', 'alias/cli-tour', '--key-spec', 'AES_256');
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.contain('DisabledException');
    expect(r.stderr).to.contain(`${keyArn(keyId)} is disabled.`);
  });

  it('aws kms schedule-key-deletion answers the deletion date and the state PendingDeletion', async () => {
    const r = await aws('schedule-key-deletion', '--key-id', keyId, '--pending-window-in-days', '7');
    expect(r.code, r.stderr).to.equal(0);
    expect(r.json['KeyId']).to.equal(keyArn(keyId));
    expect(r.json['KeyState']).to.equal('PendingDeletion');
    expect(r.json['PendingWindowInDays']).to.equal(7);
    const d = await aws('describe-key', '--key-id', keyId);
    expect((d.json['KeyMetadata'] as Record<string, unknown>)['KeyState']).to.equal('PendingDeletion');
  });
});
