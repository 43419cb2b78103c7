/**
 * The KMS keys the gateway serves, resolved from any of the four KeyId forms
 * (key id, key ARN, alias name, alias ARN), with their state and usage
 * checks. In this slice every key comes from the config file's key table;
 * the token holds the material.
 */
import type { Config, KeyConfig, KeySpec } from '../config/config.js';
import {
  DisabledException,
  KeyUnavailableException,
  KMSInvalidStateException,
  NotFoundException,
} from '../errors.js';
import type { Hsm } from '../hsm/hsm.js';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';

export interface KmsKey {
  keyId: string;
  arn: string;
  keySpec: KeySpec;
  keyUsage: 'ENCRYPT_DECRYPT';
  description: string;
  aliases: string[];
  state: KeyState;
  creationDate: Date;
  /** The HSM's name for the material new ciphertexts use. */
  currentMaterial: { version: number; name: string };
  /** false when the material was not found on the token at start. */
  materialPresent: boolean;
}

export interface KeyStoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function materialName(keyId: string, version: number): string {
  return `${keyId}#${version}`;
}

export class KeyStore {
  private readonly byId = new Map<string, KmsKey>();
  private readonly byAlias = new Map<string, KmsKey>();
  readonly region: string;
  readonly accountId: string;

  constructor(
    config: Pick<Config, 'region' | 'accountId' | 'keys'>,
    private readonly hsm: Hsm,
  ) {
    this.region = config.region;
    this.accountId = config.accountId;
    for (const k of config.keys) {
      const key = this.fromConfig(k);
      this.byId.set(key.keyId, key);
      for (const a of key.aliases) this.byAlias.set(a, key);
    }
  }

  private fromConfig(k: KeyConfig): KmsKey {
    return {
      keyId: k.keyId,
      arn: this.keyArn(k.keyId),
      keySpec: k.keySpec,
      keyUsage: k.keyUsage,
      description: k.description,
      aliases: [...k.aliases],
      state: k.enabled ? 'Enabled' : 'Disabled',
      creationDate: new Date(),
      currentMaterial: { version: 0, name: materialName(k.keyId, 0) },
      materialPresent: false,
    };
  }

  /** Finds (or creates, where the key table says so) every key's material on the token. */
  async init(config: Pick<Config, 'keys'>, log: KeyStoreLogger): Promise<void> {
    for (const k of config.keys) {
      const key = this.byId.get(k.keyId) as KmsKey;
      const result = await this.hsm.prepareKey({
        name: key.currentMaterial.name,
        displayName: key.arn,
        keySpec: k.keySpec,
        createIfMissing: k.createIfMissing,
        ref: { label: k.pkcs11.label, id: k.pkcs11.id === undefined ? undefined : Buffer.from(k.pkcs11.id, 'hex') },
      });
      key.materialPresent = result.state === 'ready';
      if (result.state === 'missing')
        log.warn({ key: key.arn }, 'key material not found on the token: the key answers KeyUnavailableException');
      else if (result.created) log.info({ key: key.arn, aliases: key.aliases }, 'created key on the token');
    }
  }

  keyArn(keyId: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:key/${keyId}`;
  }

  aliasArn(alias: string): string {
    return `arn:aws:kms:${this.region}:${this.accountId}:${alias}`;
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * Any of the four KeyId forms to a key, with AWS's NotFoundException texts.
   * The caller has validated the string's length.
   */
  resolve(keyId: string): KmsKey {
    if (keyId.startsWith('arn:')) return this.resolveArn(keyId);
    if (keyId.startsWith('alias/')) return this.resolveAlias(keyId);
    if (UUID.test(keyId)) return this.resolveId(keyId);
    throw new NotFoundException(`Invalid keyId '${keyId}'`);
  }

  /** A key named by id alone, as a ciphertext blob names it. */
  findById(keyId: string): KmsKey | undefined {
    return this.byId.get(keyId);
  }

  private resolveId(keyId: string): KmsKey {
    const key = this.byId.get(keyId);
    if (key === undefined) throw new NotFoundException(`Key '${this.keyArn(keyId)}' does not exist`);
    return key;
  }

  private resolveAlias(alias: string): KmsKey {
    const key = this.byAlias.get(alias);
    if (key === undefined) throw new NotFoundException(`Alias ${this.aliasArn(alias)} is not found.`);
    return key;
  }

  private resolveArn(arn: string): KmsKey {
    // arn:<partition>:kms:<region>:<account>:<resource>; the resource may itself hold ':' only if malformed.
    const parts = arn.split(':');
    if (parts.length !== 6 || parts[1] === '' || parts[2] !== 'kms') throw new NotFoundException(`Invalid arn ${arn}`);
    const [, , , region, account, resource] = parts as [string, string, string, string, string, string];
    if (region !== this.region) throw new NotFoundException(`Invalid arn ${region}`);
    if (resource.startsWith('key/')) {
      const id = resource.slice(4);
      if (account !== this.accountId || !UUID.test(id)) throw new NotFoundException(`Key '${arn}' does not exist`);
      return this.resolveId(id);
    }
    if (resource.startsWith('alias/')) {
      const key = account === this.accountId ? this.byAlias.get(resource) : undefined;
      if (key === undefined) throw new NotFoundException(`Alias ${arn} is not found.`);
      return key;
    }
    throw new NotFoundException(`Invalid arn ${arn}`);
  }

  /** State checks every cryptographic operation makes, in AWS's order. */
  assertUsable(key: KmsKey): void {
    if (key.state === 'Disabled') throw new DisabledException(`${key.arn} is disabled.`);
    if (key.state === 'PendingDeletion') throw new KMSInvalidStateException(`${key.arn} is pending deletion.`);
    if (!key.materialPresent) throw new KeyUnavailableException(`${key.arn} is unavailable.`);
  }
}
