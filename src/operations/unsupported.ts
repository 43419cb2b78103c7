/**
 * Every operation of the KMS API model (botocore's kms/2014-11-01
 * service-2.json, with the newer Encapsulate/Decapsulate of the current
 * @aws-sdk/client-kms model) that this gateway does not serve. They answer
 * UnsupportedOperationException (400) naming the operation, so a client
 * learns that the gateway knows the operation and refuses it, rather than
 * UnknownOperationException, which means a malformed or unknown target.
 * The request body is not looked into (but must be a JSON object, as for
 * every operation).
 */
import { z } from 'zod';
import { UnsupportedOperationException } from '../errors.js';
import { defineOperation, type Operation } from './operation.js';

export const UNSUPPORTED_OPERATIONS = [
  // grants
  'CreateGrant',
  'ListGrants',
  'ListRetirableGrants',
  'RetireGrant',
  'RevokeGrant',
  // key policies
  'GetKeyPolicy',
  'ListKeyPolicies',
  'PutKeyPolicy',
  // custom key stores
  'ConnectCustomKeyStore',
  'CreateCustomKeyStore',
  'DeleteCustomKeyStore',
  'DescribeCustomKeyStores',
  'DisconnectCustomKeyStore',
  'UpdateCustomKeyStore',
  // multi-Region keys
  'ReplicateKey',
  'UpdatePrimaryRegion',
  // imported key material
  'DeleteImportedKeyMaterial',
  'GetParametersForImport',
  'ImportKeyMaterial',
  // signing: until a later issue
  'Sign',
  'Verify',
  // HMAC, key agreement, KEM
  'GenerateMac',
  'VerifyMac',
  'DeriveSharedSecret',
  'Encapsulate',
  'Decapsulate',
  // key usage tracking
  'GetKeyLastUsage',
] as const;

export type UnsupportedOperationName = (typeof UNSUPPORTED_OPERATIONS)[number];

export function unsupportedOperation(name: UnsupportedOperationName): Operation {
  return defineOperation(z.object({}), async () => {
    throw new UnsupportedOperationException(`${name} is not supported by kms-hsm-gateway.`);
  }) as Operation;
}
