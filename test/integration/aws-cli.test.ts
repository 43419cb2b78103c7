/**
 * The real AWS CLI (`aws` on PATH) against one real gateway process with the
 * embedded default config (plus one disabled key): what a user of the
 * README's quickstart sees, exit codes and error texts included.
 *
 * The CLI starts slowly (~1 s a call), so the file keeps to about a dozen
 * invocations; ciphertexts the error cases need come from the SDK.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import {
  ACCOUNT,
  REGION,
  awsCliEnv,
  defaultConfig,
  keyArn,
  kmsClient,
  startGateway,
  type GatewayProcess,
} from '../support/gateway.js';

const AES_KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const RSA_2048_KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a02';
const DISABLED_KEY_ID = '6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

describe('the AWS CLI against the gateway', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let sdk: KMSClient;
  let dir: string;
  /** The exit code the CLI gives when the service answers with an error: 254 (v2), 255 (v1). */
  let serviceErrorCode: number;
  let files = 0;

  function aws(args: string[]): Promise<CliResult> {
    return new Promise((resolve, reject) => {
      execFile(
        'aws',
        ['--endpoint-url', gw.url, '--output', 'json', ...args],
        { env: awsCliEnv(), timeout: 30_000, maxBuffer: 1 << 20 },
        (err, stdout, stderr) => {
          if (err === null) return resolve({ code: 0, stdout, stderr });
          if (typeof err.code === 'number') return resolve({ code: err.code, stdout, stderr });
          reject(new Error(`cannot run aws ${args.join(' ')}: ${err.message}\n${stderr}`));
        },
      );
    });
  }

  async function awsJson(args: string[]): Promise<Record<string, string>> {
    const r = await aws(args);
    if (r.code !== 0) throw new Error(`aws ${args.join(' ')} exited with ${r.code}:\n${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, string>;
  }

  /** Raw bytes in a file, for `fileb://`. */
  function fileb(bytes: Uint8Array): string {
    const path = join(dir, `blob-${files++}`);
    writeFileSync(path, bytes);
    return `fileb://${path}`;
  }

  async function sdkEncrypt(keyId: string, plaintext: Buffer, context?: Record<string, string>): Promise<Uint8Array> {
    const out = await sdk.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context }));
    return out.CiphertextBlob as Uint8Array;
  }

  before(async () => {
    dir = mkdtempSync(join(process.env['KMSGW_TEST_TMP'] ?? tmpdir(), 'awscli-'));
    const config = defaultConfig();
    (config['keys'] as unknown[]).push({
      keyId: DISABLED_KEY_ID,
      aliases: ['alias/it-disabled'],
      keySpec: 'SYMMETRIC_DEFAULT',
      enabled: false,
      pkcs11: { label: 'kmsgw-it-disabled' },
      createIfMissing: true,
    });
    const [version] = await Promise.all([
      new Promise<string>((resolve, reject) =>
        execFile('aws', ['--version'], { env: awsCliEnv(), timeout: 30_000 }, (err, stdout, stderr) =>
          err === null ? resolve(`${stdout}${stderr}`) : reject(new Error(`aws --version failed (is the AWS CLI on PATH? make test-deps): ${err.message}`)),
        ),
      ),
      startGateway({ config }).then((g) => {
        gw = g;
      }),
    ]);
    const major = /aws-cli\/(\d+)\./.exec(version)?.[1];
    if (major === undefined) throw new Error(`cannot tell the AWS CLI version from: ${version}`);
    // AWS CLI v2 exits 254 when the service returned an error; v1 used 255 for every failure.
    serviceErrorCode = Number(major) >= 2 ? 254 : 255;
    sdk = kmsClient(gw.url);
  });

  after(async () => {
    sdk?.destroy();
    await gw?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('encrypts raw bytes with alias/demo-aes and an encryption context, and decrypts them with the same context', async () => {
    const plaintext = Buffer.concat([Buffer.from([0x00, 0xff, 0x80, 0x0a]), randomBytes(60)]);
    const enc = await awsJson([
      'kms', 'encrypt',
      '--key-id', 'alias/demo-aes',
      '--plaintext', fileb(plaintext),
      '--encryption-context', 'purpose=test',
    ]);
    expect(enc['KeyId']).to.equal(keyArn(AES_KEY_ID));
    expect(enc['EncryptionAlgorithm']).to.equal('SYMMETRIC_DEFAULT');
    const blob = Buffer.from(enc['CiphertextBlob'] as string, 'base64');
    expect(blob.length).to.be.greaterThan(plaintext.length);

    const dec = await awsJson([
      'kms', 'decrypt',
      '--ciphertext-blob', fileb(blob),
      '--encryption-context', 'purpose=test',
    ]);
    expect(dec['KeyId']).to.equal(keyArn(AES_KEY_ID));
    expect(dec['EncryptionAlgorithm']).to.equal('SYMMETRIC_DEFAULT');
    // The CLI prints Plaintext base64-encoded in JSON output.
    expect(Buffer.from(dec['Plaintext'] as string, 'base64').equals(plaintext)).to.equal(true);
  });

  it('accepts the key id, key ARN and alias ARN forms of --key-id', async () => {
    const forms = [AES_KEY_ID, keyArn(AES_KEY_ID), `arn:aws:kms:${REGION}:${ACCOUNT}:alias/demo-aes`];
    const plaintext = Buffer.from('key id forms');
    const path = fileb(plaintext);
    for (const form of forms) {
      const enc = await awsJson(['kms', 'encrypt', '--key-id', form, '--plaintext', path]);
      expect(enc['KeyId'], form).to.equal(keyArn(AES_KEY_ID));
      const dec = await sdk.send(new DecryptCommand({ CiphertextBlob: Buffer.from(enc['CiphertextBlob'] as string, 'base64') }));
      expect(Buffer.from(dec.Plaintext as Uint8Array).equals(plaintext), form).to.equal(true);
    }
  });

  it('encrypts with RSAES_OAEP_SHA_256 on alias/demo-rsa-2048 and decrypts with --key-id and --encryption-algorithm', async () => {
    const plaintext = randomBytes(190); // the RSA-2048 / OAEP-SHA-256 maximum
    const enc = await awsJson([
      'kms', 'encrypt',
      '--key-id', 'alias/demo-rsa-2048',
      '--plaintext', fileb(plaintext),
      '--encryption-algorithm', 'RSAES_OAEP_SHA_256',
    ]);
    expect(enc['KeyId']).to.equal(keyArn(RSA_2048_KEY_ID));
    expect(enc['EncryptionAlgorithm']).to.equal('RSAES_OAEP_SHA_256');
    const blob = Buffer.from(enc['CiphertextBlob'] as string, 'base64');
    expect(blob.length).to.equal(256);

    const dec = await awsJson([
      'kms', 'decrypt',
      '--ciphertext-blob', fileb(blob),
      '--key-id', 'alias/demo-rsa-2048',
      '--encryption-algorithm', 'RSAES_OAEP_SHA_256',
    ]);
    expect(dec['KeyId']).to.equal(keyArn(RSA_2048_KEY_ID));
    expect(dec['EncryptionAlgorithm']).to.equal('RSAES_OAEP_SHA_256');
    expect(Buffer.from(dec['Plaintext'] as string, 'base64').equals(plaintext)).to.equal(true);
  });

  it('shows InvalidCiphertextException for a wrong encryption context, with the service-error exit code', async () => {
    const blob = await sdkEncrypt('alias/demo-aes', Buffer.from('context bound'), { purpose: 'test' });
    const r = await aws(['kms', 'decrypt', '--ciphertext-blob', fileb(blob), '--encryption-context', 'purpose=other']);
    expect(r.code).to.equal(serviceErrorCode);
    expect(r.stderr).to.contain('InvalidCiphertextException');
    expect(r.stderr).to.contain('Decrypt');
    expect(r.stdout).to.equal('');
  });

  it('shows NotFoundException with the alias ARN for an unknown alias', async () => {
    const r = await aws(['kms', 'encrypt', '--key-id', 'alias/does-not-exist', '--plaintext', fileb(Buffer.from('x'))]);
    expect(r.code).to.equal(serviceErrorCode);
    expect(r.stderr).to.contain('NotFoundException');
    expect(r.stderr).to.contain(`arn:aws:kms:${REGION}:${ACCOUNT}:alias/does-not-exist`);
  });

  it('shows DisabledException for a disabled key', async () => {
    const r = await aws(['kms', 'encrypt', '--key-id', 'alias/it-disabled', '--plaintext', fileb(Buffer.from('x'))]);
    expect(r.code).to.equal(serviceErrorCode);
    expect(r.stderr).to.contain('DisabledException');
    expect(r.stderr).to.contain(keyArn(DISABLED_KEY_ID));
  });
});
