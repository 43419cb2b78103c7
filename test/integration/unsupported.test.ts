/**
 * The KMS operations the gateway does not serve answer
 * UnsupportedOperationException (400) naming the operation, and every
 * operation of the KMS model is known to the gateway: only a target outside
 * the model answers UnknownOperationException. The model's operation list is
 * the one @aws-sdk/client-kms was generated from (its *Command classes).
 */
import { expect } from 'chai';
import * as sdk from '@aws-sdk/client-kms';
import { CreateGrantCommand, type KMSClient } from '@aws-sdk/client-kms';
import { kmsClient, rawRequest, startGateway, type GatewayProcess } from '../support/gateway.js';

/** The operations this gateway serves (or will, per its issues); everything else in the model is unsupported. */
const SERVED = [
  'Encrypt',
  'Decrypt',
  'ReEncrypt',
  'GenerateDataKey',
  'GenerateDataKeyWithoutPlaintext',
  'GenerateDataKeyPair',
  'GenerateDataKeyPairWithoutPlaintext',
  'GenerateRandom',
  'CreateKey',
  'DescribeKey',
  'ListKeys',
  'EnableKey',
  'DisableKey',
  'ScheduleKeyDeletion',
  'CancelKeyDeletion',
  'GetPublicKey',
  'UpdateKeyDescription',
  'TagResource',
  'UntagResource',
  'ListResourceTags',
  'CreateAlias',
  'UpdateAlias',
  'DeleteAlias',
  'ListAliases',
  'EnableKeyRotation',
  'DisableKeyRotation',
  'GetKeyRotationStatus',
  'RotateKeyOnDemand',
  'ListKeyRotations',
];

const MODEL_OPERATIONS = Object.keys(sdk)
  .filter((name) => /^[A-Z][A-Za-z0-9]+Command$/.test(name))
  .map((name) => name.slice(0, -'Command'.length))
  .sort();

const UNSUPPORTED = MODEL_OPERATIONS.filter((op) => !SERVED.includes(op));

describe('Unsupported KMS operations', function () {
  this.timeout(60_000);
  let gw: GatewayProcess;
  let kms: KMSClient;

  before(async function () {
    gw = await startGateway();
    kms = kmsClient(gw.url);
  });

  after(async function () {
    kms?.destroy();
    await gw?.stop();
  });

  it('takes the operations from the KMS model (sanity check of the list)', function () {
    expect(MODEL_OPERATIONS.length).to.be.at.least(50);
    expect(MODEL_OPERATIONS).to.include.members(['CreateGrant', 'Sign', 'Verify', 'GetKeyPolicy', 'ImportKeyMaterial', ...SERVED]);
    expect(UNSUPPORTED).to.include.members(['CreateGrant', 'ListGrants', 'RetireGrant', 'RevokeGrant', 'Sign', 'Verify', 'DeriveSharedSecret']);
  });

  for (const op of UNSUPPORTED) {
    it(`answers ${op} with UnsupportedOperationException (400) naming it`, async function () {
      const raw = await rawRequest(gw.url, { target: `TrentService.${op}`, body: '{"KeyId":"alias/demo-aes"}' });
      expect(raw.status).to.equal(400);
      expect(raw.headers.get('x-amzn-errortype')).to.equal('UnsupportedOperationException');
      expect(raw.headers.get('x-amzn-requestid')).to.be.a('string');
      expect(raw.body).to.deep.equal({
        __type: 'UnsupportedOperationException',
        message: `${op} is not supported by kms-hsm-gateway.`,
      });
    });
  }

  it('answers an unsupported operation with an empty body the same way', async function () {
    const raw = await rawRequest(gw.url, { target: 'TrentService.ListGrants', body: '' });
    expect(raw.status).to.equal(400);
    expect(raw.body?.['__type']).to.equal('UnsupportedOperationException');
  });

  it('knows every operation of the KMS model: none answers UnknownOperationException', async function () {
    const unknown: string[] = [];
    for (const op of MODEL_OPERATIONS) {
      const raw = await rawRequest(gw.url, { target: `TrentService.${op}`, body: '{}' });
      if (raw.body?.['__type'] === 'UnknownOperationException') unknown.push(op);
    }
    expect(unknown, 'model operations the gateway does not know').to.deep.equal([]);
  });

  it('still answers UnknownOperationException for a name outside the model', async function () {
    for (const target of ['TrentService.MakeCoffee', 'TrentService.createGrant', 'KmsService.CreateGrant']) {
      const raw = await rawRequest(gw.url, { target, body: '{}' });
      expect(raw.status, target).to.equal(400);
      expect(raw.body?.['__type'], target).to.equal('UnknownOperationException');
    }
  });

  it('answers the SDK’s CreateGrantCommand with UnsupportedOperationException, a client fault', async function () {
    let err: { name: string; message: string; $fault: string; $metadata: { httpStatusCode?: number } } | undefined;
    try {
      await kms.send(
        new CreateGrantCommand({ KeyId: 'alias/demo-aes', GranteePrincipal: 'arn:aws:iam::111122223333:role/app', Operations: ['Decrypt'] }),
      );
    } catch (e) {
      err = e as typeof err;
    }
    expect(err?.name).to.equal('UnsupportedOperationException');
    expect(err?.message).to.equal('CreateGrant is not supported by kms-hsm-gateway.');
    expect(err?.$fault).to.equal('client');
    expect(err?.$metadata.httpStatusCode).to.equal(400);
  });
});
