/**
 * The KMS JSON 1.1 framing of the gateway, seen on the wire with raw HTTP
 * requests that an SDK would never send: targets, authentication presence,
 * body parsing, validation messages, error envelopes and response headers.
 * One real gateway process on a throwaway SoftHSM2 token.
 */
import { expect } from 'chai';
import { defaultConfig, keyArn, rawRequest, startGateway, type GatewayProcess } from '../support/gateway.js';

const AES = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ENCRYPT = 'TrentService.Encrypt';
const DECRYPT = 'TrentService.Decrypt';
const PLAINTEXT = Buffer.from('framing test').toString('base64');

type Raw = Awaited<ReturnType<typeof rawRequest>>;

/** A KMS JSON error: the status, `__type` in the body and the same name in X-Amzn-ErrorType. */
function expectKmsError(res: Raw, status: number, name: string, message?: string): void {
  expect(res.status, `status (body: ${res.text})`).to.equal(status);
  expect(res.headers.get('x-amzn-errortype')).to.equal(name);
  expect(res.body, `body: ${res.text}`).to.be.an('object');
  expect(res.body?.['__type']).to.equal(name);
  if (message !== undefined) expect(res.body?.['message']).to.equal(message);
  expect(res.headers.get('content-type')).to.match(/^application\/x-amz-json-1\.1/);
}

describe('KMS JSON 1.1 framing on the wire', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  const send = (init: Parameters<typeof rawRequest>[1]) => rawRequest(gw.url, init);
  const encryptBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ KeyId: AES, Plaintext: PLAINTEXT, ...extra });

  before(async function () {
    const config = defaultConfig();
    // Framing needs one key only; skipping the RSA keys keeps start-up short.
    config['keys'] = (config['keys'] as Array<{ keySpec: string }>).filter((k) => k.keySpec === 'SYMMETRIC_DEFAULT');
    gw = await startGateway({ config });
  });

  after(async function () {
    await gw?.stop();
  });

  it('answers a well-formed Encrypt with 200 and the KMS JSON content type', async function () {
    const res = await send({ target: ENCRYPT, body: encryptBody() });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/x-amz-json-1\.1/);
    expect(res.body?.['KeyId']).to.equal(keyArn(AES));
    expect(res.body?.['EncryptionAlgorithm']).to.equal('SYMMETRIC_DEFAULT');
    expect(res.body?.['CiphertextBlob']).to.be.a('string');
  });

  describe('targets', function () {
    it('answers 400 UnknownOperationException for an operation it does not serve', async function () {
      expectKmsError(await send({ target: 'TrentService.ListKeysPlease', body: '{}' }), 400, 'UnknownOperationException');
    });

    it('answers 400 UnknownOperationException for another service prefix', async function () {
      expectKmsError(await send({ target: 'DynamoDB_20120810.Encrypt', body: encryptBody() }), 400, 'UnknownOperationException');
    });

    it('answers 400 UnknownOperationException for a missing X-Amz-Target', async function () {
      expectKmsError(await send({ body: encryptBody() }), 400, 'UnknownOperationException');
    });

    it('matches the operation name exactly (case-sensitive)', async function () {
      expectKmsError(await send({ target: 'TrentService.encrypt', body: encryptBody() }), 400, 'UnknownOperationException');
    });

    it('answers GET / with a 4xx KMS error envelope', async function () {
      const res = await send({ method: 'GET' });
      expect(res.status).to.be.within(400, 499);
      expect(res.body?.['__type']).to.be.a('string');
      expect(res.headers.get('x-amzn-errortype')).to.equal(res.body?.['__type']);
    });

    it('answers POST to another path with a 4xx KMS error envelope', async function () {
      const res = await rawRequest(`${gw.url}/2014-11-01/keys`, { target: ENCRYPT, body: encryptBody() });
      expect(res.status).to.be.within(400, 499);
      expect(res.body?.['__type']).to.be.a('string');
    });
  });

  describe('authentication', function () {
    it('answers 400 MissingAuthenticationTokenException for an unsigned request', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody(), signed: false });
      expectKmsError(res, 400, 'MissingAuthenticationTokenException');
    });

    it('checks the target before authentication, as AWS does', async function () {
      const res = await send({ target: 'TrentService.Nope', body: '{}', signed: false });
      expectKmsError(res, 400, 'UnknownOperationException');
    });

    it('answers 400 IncompleteSignatureException for an Authorization header that is not SigV4', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody(), headers: { authorization: 'Basic dXNlcjpwYXNz' } });
      expectKmsError(res, 400, 'IncompleteSignatureException');
    });
  });

  describe('body parsing', function () {
    it('answers 400 SerializationException for malformed JSON', async function () {
      expectKmsError(await send({ target: ENCRYPT, body: '{"KeyId": ' }), 400, 'SerializationException');
    });

    it('answers 400 SerializationException for a JSON array body', async function () {
      expectKmsError(await send({ target: ENCRYPT, body: `[${encryptBody()}]` }), 400, 'SerializationException');
    });

    it('answers 400 SerializationException for a JSON string body', async function () {
      expectKmsError(await send({ target: ENCRYPT, body: '"hello"' }), 400, 'SerializationException');
    });

    it('answers 400 SerializationException for Plaintext given as a number', async function () {
      expectKmsError(await send({ target: ENCRYPT, body: JSON.stringify({ KeyId: AES, Plaintext: 42 }) }), 400, 'SerializationException');
    });

    it('answers 400 SerializationException for KeyId given as an object', async function () {
      expectKmsError(await send({ target: ENCRYPT, body: JSON.stringify({ KeyId: { id: AES }, Plaintext: PLAINTEXT }) }), 400, 'SerializationException');
    });

    it('answers 400 SerializationException for Plaintext that is not base64', async function () {
      expectKmsError(await send({ target: ENCRYPT, body: encryptBody({ Plaintext: 'not base64!' }) }), 400, 'SerializationException');
    });

    it('answers 400 SerializationException for a CiphertextBlob that is not base64', async function () {
      expectKmsError(await send({ target: DECRYPT, body: JSON.stringify({ CiphertextBlob: '%%%%' }) }), 400, 'SerializationException');
    });

    it('answers 400 SerializationException for an EncryptionContext value that is not a string', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ EncryptionContext: { a: 1 } }) });
      expectKmsError(res, 400, 'SerializationException');
    });

    it('answers 400 SerializationException for an object as the value of an EncryptionContext "__proto__" key', async function () {
      const body = `{"KeyId":"${AES}","Plaintext":"${PLAINTEXT}","EncryptionContext":{"__proto__":{"a":"b"}}}`;
      expectKmsError(await send({ target: ENCRYPT, body }), 400, 'SerializationException');
    });

    it('answers 413 with a KMS envelope for a body over 64 KiB', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ Padding: 'x'.repeat(64 * 1024) }) });
      expect(res.status).to.equal(413);
      expect(res.body?.['__type']).to.be.a('string');
      expect(res.headers.get('x-amzn-errortype')).to.equal(res.body?.['__type']);
    });

    it('accepts a body just under 64 KiB (unknown members are ignored)', async function () {
      const body = encryptBody({ Padding: 'x'.repeat(60 * 1024) });
      expect(body.length).to.be.below(64 * 1024);
      const res = await send({ target: ENCRYPT, body });
      expect(res.status, res.text).to.equal(200);
    });

    it('ignores unknown JSON members, as AWS does', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ Unknown: 1, nested: { a: [1, 2] }, keyid: 'lower-case is another member' }) });
      expect(res.status, res.text).to.equal(200);
      const dec = await send({ target: DECRYPT, body: JSON.stringify({ CiphertextBlob: res.body?.['CiphertextBlob'], Whatever: true }) });
      expect(dec.status, dec.text).to.equal(200);
      expect(dec.body?.['Plaintext']).to.equal(PLAINTEXT);
    });

    it('treats a JSON null member as absent', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ EncryptionContext: null, GrantTokens: null, EncryptionAlgorithm: null }) });
      expect(res.status, res.text).to.equal(200);
    });
  });

  describe('validation messages', function () {
    it('answers ValidationException "Value null at \'keyId\'" for a missing KeyId', async function () {
      const res = await send({ target: ENCRYPT, body: JSON.stringify({ Plaintext: PLAINTEXT }) });
      expectKmsError(
        res,
        400,
        'ValidationException',
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null",
      );
    });

    it('counts and joins two validation errors with "; "', async function () {
      const res = await send({ target: ENCRYPT, body: JSON.stringify({ Plaintext: PLAINTEXT, EncryptionAlgorithm: 'ROT13' }) });
      expectKmsError(res, 400, 'ValidationException');
      const message = String(res.body?.['message']);
      const prefix = '2 validation errors detected: ';
      expect(message.startsWith(prefix), message).to.equal(true);
      const items = message.slice(prefix.length).split('; ');
      expect(items).to.have.length(2);
      expect(items).to.include("Value null at 'keyId' failed to satisfy constraint: Member must not be null");
      expect(items.find((i) => i.startsWith("Value 'ROT13' at 'encryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: ["))).to.be.a('string');
    });

    it('answers ValidationException "Member must satisfy enum value set" for an unknown EncryptionAlgorithm', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ EncryptionAlgorithm: 'AES_GCM' }) });
      expectKmsError(res, 400, 'ValidationException');
      const message = String(res.body?.['message']);
      expect(message).to.match(/^1 validation error detected: Value 'AES_GCM' at 'encryptionAlgorithm' failed to satisfy constraint: /);
      expect(message).to.contain('Member must satisfy enum value set');
      for (const a of ['SYMMETRIC_DEFAULT', 'RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256', 'SM2PKE']) expect(message).to.contain(a);
    });

    it('answers ValidationException for an empty Plaintext', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ Plaintext: '' }) });
      expectKmsError(
        res,
        400,
        'ValidationException',
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1",
      );
    });

    it('answers ValidationException for an empty KeyId', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ KeyId: '' }) });
      expectKmsError(
        res,
        400,
        'ValidationException',
        "1 validation error detected: Value '' at 'keyId' failed to satisfy constraint: Member must have length greater than or equal to 1",
      );
    });

    it('answers ValidationException for a CiphertextBlob over 6144 bytes', async function () {
      const res = await send({ target: DECRYPT, body: JSON.stringify({ CiphertextBlob: Buffer.alloc(6145, 1).toString('base64') }) });
      expectKmsError(
        res,
        400,
        'ValidationException',
        "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length less than or equal to 6144",
      );
    });

    it('names the list item of an empty grant token', async function () {
      const res = await send({ target: ENCRYPT, body: encryptBody({ GrantTokens: ['ok', ''] }) });
      expectKmsError(res, 400, 'ValidationException');
      expect(String(res.body?.['message'])).to.contain("at 'grantTokens.2.member' failed to satisfy constraint: Member must have length greater than or equal to 1");
    });

    it('answers an empty body as an empty request: ValidationException for both required members', async function () {
      const res = await send({ target: ENCRYPT, body: '' });
      expectKmsError(res, 400, 'ValidationException');
      expect(String(res.body?.['message'])).to.match(/^2 validation errors detected: /);
    });
  });

  describe('response headers', function () {
    const probes: Array<[string, Parameters<typeof rawRequest>[1]]> = [
      ['a success', { target: ENCRYPT, body: encryptBody() }],
      ['a validation error', { target: ENCRYPT, body: '{}' }],
      ['a serialization error', { target: ENCRYPT, body: '{' }],
      ['an unknown operation', { target: 'TrentService.Nope' }],
      ['an unsigned request', { target: ENCRYPT, body: encryptBody(), signed: false }],
      ['a GET', { method: 'GET' }],
      ['an InvalidCiphertextException', { target: DECRYPT, body: JSON.stringify({ CiphertextBlob: Buffer.alloc(64, 7).toString('base64') }) }],
      ['an over-size body', { target: ENCRYPT, body: 'x'.repeat(70 * 1024) }],
    ];

    it('gives every response, success or error, its own x-amzn-RequestId UUID', async function () {
      const seen = new Set<string>();
      for (const [what, init] of probes) {
        const res = await send(init);
        const id = res.headers.get('x-amzn-requestid');
        expect(id, what).to.match(UUID);
        expect(seen.has(id as string), `${what}: request id reused`).to.equal(false);
        seen.add(id as string);
      }
    });

    it('never sends X-Powered-By', async function () {
      for (const [what, init] of probes) {
        const res = await send(init);
        expect(res.headers.get('x-powered-by'), what).to.equal(null);
      }
    });

    it("sends helmet's security headers on every response", async function () {
      for (const [what, init] of probes) {
        const res = await send(init);
        expect(res.headers.get('x-content-type-options'), what).to.equal('nosniff');
        expect(res.headers.get('x-frame-options'), what).to.be.a('string');
        expect(res.headers.get('content-security-policy'), what).to.be.a('string');
        expect(res.headers.get('strict-transport-security'), what).to.be.a('string');
        expect(res.headers.get('cross-origin-resource-policy'), what).to.be.a('string');
      }
    });

    it('leaves `message` out of an error that has none, and keeps it in one that has', async function () {
      const invalid = await send({ target: DECRYPT, body: JSON.stringify({ CiphertextBlob: Buffer.alloc(64, 7).toString('base64') }) });
      expectKmsError(invalid, 400, 'InvalidCiphertextException');
      expect(invalid.body).to.deep.equal({ __type: 'InvalidCiphertextException' });
      const notFound = await send({ target: ENCRYPT, body: encryptBody({ KeyId: 'alias/nope' }) });
      expectKmsError(notFound, 400, 'NotFoundException', 'Alias arn:aws:kms:us-east-1:111122223333:alias/nope is not found.');
    });
  });

  it('still answers a full Encrypt/Decrypt round trip after all of that', async function () {
    const enc = await send({ target: ENCRYPT, body: encryptBody({ EncryptionContext: { k: 'v' } }) });
    expect(enc.status, enc.text).to.equal(200);
    const dec = await send({ target: DECRYPT, body: JSON.stringify({ CiphertextBlob: enc.body?.['CiphertextBlob'], EncryptionContext: { k: 'v' } }) });
    expect(dec.status, dec.text).to.equal(200);
    expect(dec.body).to.deep.equal({ KeyId: keyArn(AES), Plaintext: PLAINTEXT, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
    expect(gw.child.exitCode).to.equal(null);
  });
});
