/**
 * The explicit registry of KMS operations this gateway serves, keyed by the
 * exact name in `X-Amz-Target: TrentService.<Name>`.
 */
import { decrypt } from './decrypt.js';
import { generateDataKey } from './generate-data-key.js';
import { generateDataKeyPair } from './generate-data-key-pair.js';
import { generateDataKeyPairWithoutPlaintext } from './generate-data-key-pair-without-plaintext.js';
import { generateDataKeyWithoutPlaintext } from './generate-data-key-without-plaintext.js';
import { generateRandom } from './generate-random.js';
import { reEncrypt } from './re-encrypt.js';
import { encrypt } from './encrypt.js';
import { createAlias } from './create-alias.js';
import { deleteAlias } from './delete-alias.js';
import { disableKeyRotation } from './disable-key-rotation.js';
import { enableKeyRotation } from './enable-key-rotation.js';
import { getKeyRotationStatus } from './get-key-rotation-status.js';
import { listAliases } from './list-aliases.js';
import { listKeyRotations } from './list-key-rotations.js';
import { rotateKeyOnDemand } from './rotate-key-on-demand.js';
import { UNSUPPORTED_OPERATIONS, unsupportedOperation } from './unsupported.js';
import { updateAlias } from './update-alias.js';
import { cancelKeyDeletion } from './cancel-key-deletion.js';
import { createKey } from './create-key.js';
import { describeKey } from './describe-key.js';
import { disableKey } from './disable-key.js';
import { enableKey } from './enable-key.js';
import { getPublicKey } from './get-public-key.js';
import { listKeys } from './list-keys.js';
import { listResourceTags } from './list-resource-tags.js';
import { scheduleKeyDeletion } from './schedule-key-deletion.js';
import { tagResource } from './tag-resource.js';
import { untagResource } from './untag-resource.js';
import { updateKeyDescription } from './update-key-description.js';
import type { Operation } from './operation.js';

export const operations: ReadonlyMap<string, Operation> = new Map<string, Operation>([
  ['Encrypt', encrypt as Operation],
  ['Decrypt', decrypt as Operation],
  // -- data keys, randomness, re-encryption --
  ['GenerateDataKey', generateDataKey as Operation],
  ['GenerateDataKeyWithoutPlaintext', generateDataKeyWithoutPlaintext as Operation],
  ['GenerateDataKeyPair', generateDataKeyPair as Operation],
  ['GenerateDataKeyPairWithoutPlaintext', generateDataKeyPairWithoutPlaintext as Operation],
  ['GenerateRandom', generateRandom as Operation],
  ['ReEncrypt', reEncrypt as Operation],
  // -- key lifecycle, tags, public keys --
  ['CreateKey', createKey as Operation],
  ['DescribeKey', describeKey as Operation],
  ['ListKeys', listKeys as Operation],
  ['EnableKey', enableKey as Operation],
  ['DisableKey', disableKey as Operation],
  ['UpdateKeyDescription', updateKeyDescription as Operation],
  ['ScheduleKeyDeletion', scheduleKeyDeletion as Operation],
  ['CancelKeyDeletion', cancelKeyDeletion as Operation],
  ['GetPublicKey', getPublicKey as Operation],
  ['TagResource', tagResource as Operation],
  ['UntagResource', untagResource as Operation],
  ['ListResourceTags', listResourceTags as Operation],
  // -- aliases and rotation --
  ['CreateAlias', createAlias as Operation],
  ['UpdateAlias', updateAlias as Operation],
  ['DeleteAlias', deleteAlias as Operation],
  ['ListAliases', listAliases as Operation],
  ['EnableKeyRotation', enableKeyRotation as Operation],
  ['DisableKeyRotation', disableKeyRotation as Operation],
  ['GetKeyRotationStatus', getKeyRotationStatus as Operation],
  ['RotateKeyOnDemand', rotateKeyOnDemand as Operation],
  ['ListKeyRotations', listKeyRotations as Operation],
  // -- unsupported operations --
  ...UNSUPPORTED_OPERATIONS.map((name): [string, Operation] => [name, unsupportedOperation(name)]),
]);
