import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { ConfigError, parseConfig } from '../../src/config/config.js';
import { ROOT } from '../support/gateway.js';

const src = { dataDir: '/var/lib/kmsgw' };

function base(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(ROOT, 'config', 'default.json'), 'utf8')) as Record<string, unknown>;
}

function errorOf(raw: unknown): string {
  try {
    parseConfig(raw, src);
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('config was accepted');
}

describe('the config file', () => {
  for (const file of readdirSync(join(ROOT, 'config')).filter((f) => f.endsWith('.json') && !f.endsWith('credentials.json'))) {
    it(`ships config/${file} valid`, () => {
      const config = parseConfig(JSON.parse(readFileSync(join(ROOT, 'config', file), 'utf8')), src);
      expect(config.keys.length).to.be.greaterThan(0);
    });
  }

  it('accepts the example in the README, so the README stays in step with the schema', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = /## Configuration[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example, 'a json block under ## Configuration').to.be.a('string');
    expect(parseConfig(JSON.parse(example as string), src).keys).to.have.length(1);
  });

  it('puts the data directory where the default says ${KMSGW_DATA_DIR}', () => {
    expect(parseConfig(base(), src).hsm.pin.file).to.equal('/var/lib/kmsgw/pin');
  });

  it('lets KMSGW_PORT override the listen port, and refuses a port that is not one', () => {
    expect(parseConfig(base(), { ...src, port: '9090' }).listen.port).to.equal(9090);
    expect(() => parseConfig(base(), { ...src, port: 'eighty' })).to.throw(ConfigError, /KMSGW_PORT/);
  });

  it('names the field of every mistake', () => {
    const c = base();
    const keys = c['keys'] as Record<string, unknown>[];
    keys[1]!['keySpec'] = 'RSA_1024';
    keys[2]!['pkcs11'] = {};
    (c['hsm'] as Record<string, unknown>)['pin'] = { env: 'X', file: 'y' };
    const msg = errorOf(c);
    expect(msg).to.contain('keys[1].keySpec');
    expect(msg).to.contain('keys[2].pkcs11: give label and/or id');
    expect(msg).to.contain('hsm.pin: give exactly one of env or file');
  });

  it('refuses a PIN written into the config file itself', () => {
    const c = base();
    (c['hsm'] as Record<string, unknown>)['pin'] = { value: '1234' };
    expect(errorOf(c)).to.contain('hsm.pin');
  });

  it('refuses an alias used by two keys, and an unknown member', () => {
    const c = base();
    const keys = c['keys'] as Record<string, unknown>[];
    keys[1]!['aliases'] = ['alias/demo-aes'];
    expect(errorOf(c)).to.contain('keys[1].aliases[0]: alias alias/demo-aes is used twice');
    expect(errorOf({ ...base(), colour: 'blue' })).to.contain('colour');
  });
});
