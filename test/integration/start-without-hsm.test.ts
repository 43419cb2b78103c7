/**
 * A gateway started before its token exists (the HSM is down, or not
 * provisioned yet): it listens anyway, says it is alive but not ready,
 * answers every KMS request with the retryable KeyUnavailableException,
 * and once the token appears it loads the key state, seeds the config's
 * keys and serves, by itself, without a restart. Real gateway process, real
 * SoftHSM2 token directory; the token is created with softhsm2-util while
 * the gateway runs.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DecryptCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { failure } from '../support/sdk-errors.js';
import { defaultConfig, kmsClient, makeToken, startGateway, type GatewayProcess } from '../support/gateway.js';

const LATE_LABEL = 'kmsgw-late';

/** Polls until cond() holds; fails after `ms` (a bound, not a speed claim). */
async function eventually(what: string, cond: () => Promise<boolean>, ms: number, logs: () => string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`${what}: not reached within ${ms} ms; the gateway's log:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One sample's value from the Prometheus text (undefined when absent). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('starting while the HSM token does not exist yet', function () {
  this.timeout(90_000);
  let gw: GatewayProcess;

  after(async () => {
    await gw?.stop();
  });

  it('listens, is alive but not ready, answers KeyUnavailableException, and serves by itself once the token appears', async () => {
    // A real token directory (softhsm2.conf, PIN files) whose store holds
    // only another token: the configured label names no token yet.
    const token = makeToken('kmsgw-other');
    const config = defaultConfig() as { hsm: Record<string, unknown> };
    config.hsm = { ...config.hsm, token: { label: LATE_LABEL }, probeIntervalMs: 200, readyCacheMs: 0 };
    gw = await startGateway({ config, token });

    const health = await fetch(`${gw.url}/healthz`);
    expect(health.status, gw.logs()).to.equal(200);
    expect(await health.json()).to.deep.equal({ status: 'ok' });

    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).to.equal(503);
    const readyBody = (await ready.json()) as { status: string; reasons: string[] };
    expect(readyBody.status).to.equal('not ready');
    expect(readyBody.reasons).to.include('key state not loaded from the HSM');

    const kms = kmsClient(gw.url);
    const refused = await failure(kms.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('too early') })));
    expect(refused.name, refused.message).to.equal('KeyUnavailableException');
    expect(refused.$metadata.httpStatusCode).to.equal(500);

    const early = await (await fetch(`${gw.url}/metrics`)).text();
    expect(sample(early, 'kmsgw_key_state_loaded')).to.equal(0);
    expect(sample(early, 'kmsgw_requests_total{operation="Encrypt",outcome="KeyUnavailableException"}')).to.equal(1);

    // The operator provisions the token, with the PINs the config names.
    execFileSync(
      'softhsm2-util',
      [
        '--init-token', '--free', '--label', LATE_LABEL,
        '--so-pin', readFileSync(join(token.dir, 'so-pin'), 'utf8').trim(),
        '--pin', readFileSync(token.pinFile, 'utf8').trim(),
      ],
      { env: { ...process.env, SOFTHSM2_CONF: token.conf }, stdio: 'ignore' },
    );

    await eventually('/readyz answers 200', async () => (await fetch(`${gw.url}/readyz`)).status === 200, 30_000, gw.logs);
    const { CiphertextBlob, KeyId } = await kms.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('now it works') }));
    expect(KeyId).to.match(/:key\/0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01$/);
    const { Plaintext } = await kms.send(new DecryptCommand({ CiphertextBlob }));
    expect(Buffer.from(Plaintext ?? []).toString()).to.equal('now it works');

    const late = await (await fetch(`${gw.url}/metrics`)).text();
    expect(sample(late, 'kmsgw_key_state_loaded')).to.equal(1);

    // The retries were logged once per cause, not once per retry.
    const warnings = gw
      .logs()
      .split('\n')
      .filter((l) => l.includes('cannot load the key state from the HSM'))
      .map((l) => (JSON.parse(l) as { message?: string }).message);
    expect(warnings.length, gw.logs()).to.be.at.least(1);
    for (let i = 1; i < warnings.length; i++) expect(warnings[i], 'a repeated warning').to.not.equal(warnings[i - 1]);
    expect(gw.logs()).to.include('key state loaded from the HSM');
  });
});
