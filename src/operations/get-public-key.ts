/**
 * GetPublicKey: the public key of an RSA key as DER SubjectPublicKeyInfo,
 * read from the token, with what a client needs to use it safely offline
 * (key spec, usage, the OAEP algorithms the gateway decrypts). Anything it
 * encrypts with RSAES_OAEP_SHA_1/256 under this key decrypts through the
 * gateway. A symmetric key has no public key: UnsupportedOperationException.
 * The key must be usable: DisabledException, KMSInvalidStateException
 * (pending deletion), KeyUnavailableException (material not on the token).
 */
import { z } from 'zod';
import { UnsupportedOperationException } from '../errors.js';
import { encryptionAlgorithmsOf } from './key-metadata.js';
import { defineOperation } from './operation.js';
import { awsString, grantTokens } from './schema.js';

export const getPublicKey = defineOperation(
  z.object({ KeyId: awsString(1, 2048), GrantTokens: grantTokens().optional() }),
  async (req, { keys, hsm }) => {
    const key = keys.resolve(req.KeyId);
    keys.assertUsable(key);
    if (key.keySpec === 'SYMMETRIC_DEFAULT')
      throw new UnsupportedOperationException(`${key.arn} key spec is SYMMETRIC_DEFAULT which is not valid for GetPublicKey.`);
    const pub = await hsm.rsaPublicKey(key.currentMaterial.name);
    return {
      KeyId: key.arn,
      PublicKey: pub.spki.toString('base64'),
      CustomerMasterKeySpec: key.keySpec,
      KeySpec: key.keySpec,
      KeyUsage: key.keyUsage,
      EncryptionAlgorithms: encryptionAlgorithmsOf(key.keySpec),
    };
  },
);
