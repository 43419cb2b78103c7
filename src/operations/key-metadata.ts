/**
 * KeyMetadata, the key description that CreateKey and DescribeKey return,
 * shaped as current AWS returns it for a customer managed, single-Region
 * key of origin AWS_KMS (member names and types of the model's KeyMetadata;
 * dates as epoch seconds, the JSON 1.1 protocol's timestamps).
 *
 * Left out as AWS leaves them out for such keys: ValidTo and ExpirationModel
 * (imported material only), CustomKeyStoreId/CloudHsmClusterId/XksKeyConfiguration
 * (custom key stores), MultiRegionConfiguration (multi-Region keys),
 * SigningAlgorithms/MacAlgorithms/KeyAgreementAlgorithms/EncapsulationAlgorithms
 * (other key usages), and PendingDeletionWindowInDays, which the model
 * documents as present only in the PendingReplicaDeletion state of a
 * multi-Region primary key (a single-Region key pending deletion carries
 * DeletionDate alone; ScheduleKeyDeletion's answer carries the window).
 */
import { createHash } from 'node:crypto';
import type { KeySpec } from '../config/config.js';
import type { KeyStore, KmsKey } from '../keys/key-store.js';

/** A JSON 1.1 timestamp: epoch seconds, fractional (milliseconds kept). */
export function epochSeconds(d: Date): number {
  return d.getTime() / 1000;
}

/** The encryption algorithms a key spec supports, in AWS's order. */
export function encryptionAlgorithmsOf(keySpec: KeySpec): string[] {
  return keySpec === 'SYMMETRIC_DEFAULT' ? ['SYMMETRIC_DEFAULT'] : ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'];
}

/**
 * The KeyMaterialId of a material version: 64 lower-case hex digits, as AWS
 * forms its key material ids. Derived (SHA-256) from the key id and version,
 * so it is stable across restarts and gateway instances without storing it,
 * and tells nothing about the material itself. ListKeyRotations should name
 * materials with this same function.
 */
export function keyMaterialId(keyId: string, version: number): string {
  return createHash('sha256').update(`kms-hsm-gateway key material\0${keyId}\0${version}`).digest('hex');
}

export function keyMetadata(key: KmsKey, keys: Pick<KeyStore, 'accountId'>): Record<string, unknown> {
  const md: Record<string, unknown> = {
    AWSAccountId: keys.accountId,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: epochSeconds(key.creationDate),
    Enabled: key.state === 'Enabled',
    Description: key.description,
    KeyUsage: key.keyUsage,
    KeyState: key.state,
  };
  if (key.state === 'PendingDeletion' && key.deletionDate !== undefined) md['DeletionDate'] = epochSeconds(key.deletionDate);
  md['Origin'] = 'AWS_KMS';
  md['KeyManager'] = 'CUSTOMER';
  md['CustomerMasterKeySpec'] = key.keySpec;
  md['KeySpec'] = key.keySpec;
  md['EncryptionAlgorithms'] = encryptionAlgorithmsOf(key.keySpec);
  md['MultiRegion'] = false;
  // AWS: "present for symmetric encryption keys with AWS_KMS or EXTERNAL origin" (the rotatable ones).
  if (key.keySpec === 'SYMMETRIC_DEFAULT') md['CurrentKeyMaterialId'] = keyMaterialId(key.keyId, key.currentMaterial.version);
  return md;
}
