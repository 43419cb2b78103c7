/**
 * RSA-OAEP interoperability with node:crypto, both ways, through a real
 * gateway process:
 * - key pairs made by node:crypto (RSA 2048 and 3072) are imported into the
 *   token with pkcs11js before the gateway starts, and named in the key
 *   table by label and/or CKA_ID (createIfMissing: false). The gateway's
 *   ciphertexts decrypt with node's private key (real OAEP on the wire, SHA-1
 *   and SHA-256), and node's ciphertexts decrypt through the gateway;
 * - the public key of a demo key the gateway generated is read from the
 *   token (CKA_MODULUS, CKA_PUBLIC_EXPONENT) and node's ciphertexts under it
 *   decrypt through the gateway;
 * - private keys stay non-extractable on the token.
 */
import {
  constants,
  createPublicKey,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { promisify } from 'node:util';
import { DecryptCommand, EncryptCommand, type EncryptionAlgorithmSpec, type KMSClient } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import pkcs11js from 'pkcs11js';
import {
  defaultConfig,
  keyArn,
  kmsClient,
  makeToken,
  startGateway,
  type GatewayProcess,
  type TokenDir,
} from '../support/gateway.js';
import { hsmIdle } from '../support/ops.js';
import { withToken } from '../support/token.js';

type Handle = Buffer;
type Hash = 'sha1' | 'sha256';
const ALGORITHM: Record<Hash, EncryptionAlgorithmSpec> = { sha1: 'RSAES_OAEP_SHA_1', sha256: 'RSAES_OAEP_SHA_256' };
const HASHES: readonly Hash[] = ['sha1', 'sha256'];
/** k - 2*hLen - 2 */
const MAX_PLAINTEXT = (bits: number, hash: Hash) => bits / 8 - 2 * (hash === 'sha1' ? 20 : 32) - 2;

const generateRsa = promisify(generateKeyPair);

interface Imported {
  bits: 2048 | 3072;
  keyId: string;
  alias: string;
  label?: string;
  id?: Buffer;
  privateKey: KeyObject;
  publicKey: KeyObject;
}


function b64u(s: string | undefined): Buffer {
  if (s === undefined) throw new Error('JWK component missing');
  return Buffer.from(s, 'base64url');
}

function labelAndId(k: Pick<Imported, 'label' | 'id'>): pkcs11js.Template {
  const t: pkcs11js.Template = [];
  if (k.label !== undefined) t.push({ type: pkcs11js.CKA_LABEL, value: k.label });
  if (k.id !== undefined) t.push({ type: pkcs11js.CKA_ID, value: k.id });
  return t;
}

/** Imports a node:crypto key pair as token objects: private key sensitive and non-extractable. */
function importPair(lib: pkcs11js.PKCS11, session: Handle, k: Imported): void {
  const jwk = k.privateKey.export({ format: 'jwk' });
  lib.C_CreateObject(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    ...labelAndId(k),
    { type: pkcs11js.CKA_MODULUS, value: b64u(jwk.n) },
    { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: b64u(jwk.e) },
    { type: pkcs11js.CKA_PRIVATE_EXPONENT, value: b64u(jwk.d) },
    { type: pkcs11js.CKA_PRIME_1, value: b64u(jwk.p) },
    { type: pkcs11js.CKA_PRIME_2, value: b64u(jwk.q) },
    { type: pkcs11js.CKA_EXPONENT_1, value: b64u(jwk.dp) },
    { type: pkcs11js.CKA_EXPONENT_2, value: b64u(jwk.dq) },
    { type: pkcs11js.CKA_COEFFICIENT, value: b64u(jwk.qi) },
  ]);
  lib.C_CreateObject(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    ...labelAndId(k),
    { type: pkcs11js.CKA_MODULUS, value: b64u(jwk.n) },
    { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: b64u(jwk.e) },
  ]);
}

function findOne(lib: pkcs11js.PKCS11, session: Handle, template: pkcs11js.Template): Handle {
  lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_TOKEN, value: true }, ...template]);
  let hits: Handle[];
  try {
    hits = lib.C_FindObjects(session, 2);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
  if (hits.length !== 1) throw new Error(`expected one object, found ${hits.length}`);
  return hits[0] as Handle;
}

/** CK_BBOOL attributes of an object. */
function flags(lib: pkcs11js.PKCS11, session: Handle, h: Handle, types: number[]): boolean[] {
  return lib.C_GetAttributeValue(session, h, types.map((type) => ({ type }))).map((a) => (a.value as Buffer)[0] === 1);
}

/** The name of the CKR a call fails with, or 'CKR_OK'. */
function ckrOf(fn: () => unknown): string {
  try {
    fn();
    return 'CKR_OK';
  } catch (e) {
    const code = (e as { code?: number }).code;
    const name = Object.entries(pkcs11js).find(([n, v]) => n.startsWith('CKR_') && v === code)?.[0];
    return name ?? String(e);
  }
}

function nodeEncrypt(key: KeyObject, hash: Hash, plaintext: Buffer): Buffer {
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, plaintext);
}

function nodeDecrypt(key: KeyObject, hash: Hash, ciphertext: Buffer): Buffer {
  return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, ciphertext);
}

describe('RSA-OAEP interop between the gateway and node:crypto', function () {
  this.timeout(60_000);
  let token: TokenDir;
  let gw: GatewayProcess;
  let kms: KMSClient;
  const imported: Imported[] = [];

  async function gatewayEncrypt(keyId: string, hash: Hash, plaintext: Buffer): Promise<Buffer> {
    const out = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionAlgorithm: ALGORITHM[hash] }));
    expect(out.EncryptionAlgorithm).to.equal(ALGORITHM[hash]);
    return Buffer.from(out.CiphertextBlob as Uint8Array);
  }

  async function gatewayDecrypt(keyId: string, hash: Hash, ciphertext: Buffer): Promise<Buffer> {
    const out = await kms.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: ciphertext, EncryptionAlgorithm: ALGORITHM[hash] }));
    return Buffer.from(out.Plaintext as Uint8Array);
  }

  before(async () => {
    token = makeToken('kmsgw-dev');
    const [p2048, p3072] = await Promise.all([
      generateRsa('rsa', { modulusLength: 2048 }),
      generateRsa('rsa', { modulusLength: 3072 }),
    ]);
    // 2048: named by label and CKA_ID; 3072: by CKA_ID alone.
    imported.push(
      {
        bits: 2048,
        keyId: '3c0ffee0-2048-4a11-8b22-000000002048',
        alias: 'alias/it-imported-rsa-2048',
        label: 'kmsgw-it-imported-2048',
        id: Buffer.from('a11ce02048', 'hex'),
        ...p2048,
      },
      {
        bits: 3072,
        keyId: '3c0ffee0-3072-4a11-8b22-000000003072',
        alias: 'alias/it-imported-rsa-3072',
        id: Buffer.from('b0b0b03072', 'hex'),
        ...p3072,
      },
    );
    withToken(token, (lib, session) => {
      for (const k of imported) importPair(lib, session, k);
    });

    const config = defaultConfig();
    for (const k of imported)
      (config['keys'] as unknown[]).push({
        keyId: k.keyId,
        aliases: [k.alias],
        keySpec: `RSA_${k.bits}`,
        description: `node:crypto RSA-${k.bits} imported by the interop test`,
        pkcs11: { ...(k.label === undefined ? {} : { label: k.label }), ...(k.id === undefined ? {} : { id: k.id.toString('hex') }) },
        createIfMissing: false,
      });
    gw = await startGateway({ config, token });
    kms = kmsClient(gw.url);
    // The tests read key objects on the token: not while the start-up's state mark replacement runs.
    await hsmIdle(gw.url);
  });

  after(async () => {
    kms?.destroy();
    await gw?.stop();
  });

  it('finds the imported key pairs (label + id, id only) and does not re-create them', () => {
    const logs = gw.logs();
    for (const k of imported) {
      expect(logs).not.to.match(new RegExp(`key/${k.keyId}[^\\n]*(created key|not found)`));
    }
    // The demo keys were created on this fresh token.
    expect(logs.match(/created key on the token/g) ?? []).to.have.length(4);
  });

  for (const bits of [2048, 3072] as const) {
    for (const hash of HASHES) {
      it(`RSA-${bits} ${ALGORITHM[hash]}: gateway ciphertext decrypts with node's private key`, async () => {
        const k = imported.find((i) => i.bits === bits) as Imported;
        for (const len of [1, 32, MAX_PLAINTEXT(bits, hash)]) {
          const plaintext = randomBytes(len);
          const ct = await gatewayEncrypt(k.alias, hash, plaintext);
          expect(ct.length).to.equal(bits / 8);
          expect(nodeDecrypt(k.privateKey, hash, ct).equals(plaintext), `${len} bytes`).to.equal(true);
        }
        // OAEP is randomised: the same plaintext twice gives two ciphertexts.
        const same = Buffer.from('same plaintext');
        const [a, b] = await Promise.all([gatewayEncrypt(k.keyId, hash, same), gatewayEncrypt(keyArn(k.keyId), hash, same)]);
        expect(a.equals(b)).to.equal(false);
        expect(nodeDecrypt(k.privateKey, hash, a).equals(same)).to.equal(true);
        expect(nodeDecrypt(k.privateKey, hash, b).equals(same)).to.equal(true);
      });

      it(`RSA-${bits} ${ALGORITHM[hash]}: node's offline ciphertext decrypts through the gateway`, async () => {
        const k = imported.find((i) => i.bits === bits) as Imported;
        for (const len of [1, 100, MAX_PLAINTEXT(bits, hash)]) {
          const plaintext = randomBytes(len);
          const ct = nodeEncrypt(k.publicKey, hash, plaintext);
          expect((await gatewayDecrypt(k.alias, hash, ct)).equals(plaintext), `${len} bytes`).to.equal(true);
        }
      });
    }
  }

  it("a ciphertext made with one OAEP hash does not decrypt with the other (InvalidCiphertextException)", async () => {
    const k = imported[0] as Imported;
    for (const [made, asked] of [['sha256', 'sha1'], ['sha1', 'sha256']] as const) {
      const ct = nodeEncrypt(k.publicKey, made, Buffer.from('hash mismatch'));
      try {
        await gatewayDecrypt(k.alias, asked, ct);
        expect.fail(`decrypted a ${made} ciphertext as ${asked}`);
      } catch (e) {
        expect((e as Error).name).to.equal('InvalidCiphertextException');
      }
    }
  });

  it("node's ciphertext under a demo key's public key (read from the token) decrypts through the gateway", async () => {
    const [n, e] = withToken(token, (lib, session) => {
      const pub = findOne(lib, session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
        { type: pkcs11js.CKA_LABEL, value: 'kmsgw-demo-rsa-2048' },
      ]);
      return lib
        .C_GetAttributeValue(session, pub, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }])
        .map((a) => a.value as Buffer);
    });
    const publicKey = createPublicKey({ key: { kty: 'RSA', n: (n as Buffer).toString('base64url'), e: (e as Buffer).toString('base64url') }, format: 'jwk' });
    expect(publicKey.asymmetricKeyDetails?.modulusLength).to.equal(2048);
    for (const hash of HASHES) {
      const plaintext = randomBytes(MAX_PLAINTEXT(2048, hash));
      const ct = nodeEncrypt(publicKey, hash, plaintext);
      expect((await gatewayDecrypt('alias/demo-rsa-2048', hash, ct)).equals(plaintext), hash).to.equal(true);
    }
  });

  it('private keys stay non-extractable: imported and gateway-generated alike', () => {
    withToken(token, (lib, session) => {
      const { CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE } = pkcs11js;
      for (const k of imported) {
        const priv = findOne(lib, session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, ...labelAndId(k)]);
        expect(flags(lib, session, priv, [CKA_SENSITIVE, CKA_EXTRACTABLE]), k.alias).to.deep.equal([true, false]);
        for (const secret of [pkcs11js.CKA_PRIVATE_EXPONENT, pkcs11js.CKA_PRIME_1, pkcs11js.CKA_COEFFICIENT])
          expect(ckrOf(() => lib.C_GetAttributeValue(session, priv, [{ type: secret }])), k.alias).to.equal('CKR_ATTRIBUTE_SENSITIVE');
      }
      // The demo keys the gateway generated (createIfMissing) never left the token.
      for (const label of ['kmsgw-demo-rsa-2048', 'kmsgw-demo-rsa-3072', 'kmsgw-demo-rsa-4096']) {
        const priv = findOne(lib, session, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
          { type: pkcs11js.CKA_LABEL, value: label },
        ]);
        expect(flags(lib, session, priv, [CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE]), label).to.deep.equal([
          true,
          false,
          true,
          true,
        ]);
        expect(ckrOf(() => lib.C_GetAttributeValue(session, priv, [{ type: pkcs11js.CKA_PRIVATE_EXPONENT }])), label).to.equal(
          'CKR_ATTRIBUTE_SENSITIVE',
        );
      }
      const aes = findOne(lib, session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_LABEL, value: 'kmsgw-demo-aes' },
      ]);
      expect(flags(lib, session, aes, [CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE])).to.deep.equal([
        true,
        false,
        true,
        true,
      ]);
      expect(ckrOf(() => lib.C_GetAttributeValue(session, aes, [{ type: pkcs11js.CKA_VALUE }]))).to.equal('CKR_ATTRIBUTE_SENSITIVE');
    });
  });
});
