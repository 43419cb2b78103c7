/**
 * Real faults of a network HSM: the token is a SoftHSM2 token exported by
 * `p11-kit server` on a unix socket, and the gateway reaches it through
 * p11-kit-client.so. The test freezes the server (SIGSTOP), resumes it
 * (SIGCONT), kills it and starts it again, and watches what clients get
 * and what the gateway's /metrics says.
 *
 * p11-kit 0.24.1 does not forward CKM_AES_GCM, so these stories use an
 * RSA-2048 key (RSAES_OAEP_SHA_256: raw RSA on the token through the RPC)
 * and GenerateRandom.
 */
import { randomUUID } from 'node:crypto';
import { DecryptCommand, EncryptCommand, GenerateRandomCommand, type KMSClient } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { kmsClient, makeToken, startGateway, tableKey, defaultConfig, type GatewayProcess, type TokenDir } from '../support/gateway.js';
import { failure } from '../support/sdk-errors.js';
import { metricSum as metric, promValue, startPrometheus, waitFor, type PrometheusServer } from '../support/ops.js';
import { P11KIT_CLIENT_MODULE, P11KitServer } from '../support/p11kit.js';

const DEADLINE_MS = 1000;
/** Slack for a loaded 2-core CI machine between the gateway's deadline and the client seeing the answer. */
const SLACK_MS = 1500;

async function get(url: string): Promise<{ status: number; text: string; ms: number }> {
  const t0 = Date.now();
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, text: await res.text(), ms: Date.now() - t0 };
}

async function eventually<T>(what: string, fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms: ${String(last)}`);
}

describe('a network HSM (p11-kit server) that freezes, dies and comes back', function () {
  this.timeout(180_000);
  const keyId = randomUUID();
  let token: TokenDir;
  let server: P11KitServer;
  let gw: GatewayProcess;
  let kms: KMSClient;
  let prom: PrometheusServer | undefined;
  const encrypt = () =>
    kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('hello'), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }));
  const metrics = async () => (await get(`${gw.url}/metrics`)).text;

  before(async () => {
    token = makeToken('kmsgw-net');
    server = new P11KitServer(token);
    const config = {
      ...defaultConfig(),
      hsm: {
        module: P11KIT_CLIENT_MODULE,
        token: { label: token.label },
        pin: { file: '${KMSGW_DATA_DIR}/pin' },
        sessionPoolSize: 4,
        deadlineMs: DEADLINE_MS,
        circuitFailureThreshold: 3,
        probeIntervalMs: 200,
      },
      keys: [tableKey(keyId, 'net-rsa', { keySpec: 'RSA_2048', aliases: ['alias/net-rsa'] })],
    };
    // The HSM is not there yet: the gateway must start anyway.
    gw = await startGateway({ token, config, env: { P11_KIT_SERVER_ADDRESS: server.address } });
    kms = kmsClient(gw.url);
  });

  afterEach(function () {
    // The gateway's own account of a failed story.
    if (this.currentTest?.state === 'failed') console.log(gw?.logs().slice(-4000));
  });

  after(async () => {
    await prom?.stop();
    await server?.stop();
    await gw?.stop();
  });

  it('starts while the HSM is down: /healthz answers, /readyz says not ready, Encrypt answers KeyUnavailableException', async () => {
    expect((await get(`${gw.url}/healthz`)).status).to.equal(200);
    expect((await get(`${gw.url}/readyz`)).status).to.equal(503);
    const err = await failure(encrypt());
    expect(err.name).to.equal('KeyUnavailableException');
    expect(err.$metadata.httpStatusCode).to.equal(500);
  });

  it('becomes ready by itself when the HSM appears, and serves RSA Encrypt and Decrypt through it', async () => {
    await server.start();
    await eventually('ready', async () => expect((await get(`${gw.url}/readyz`)).status).to.equal(200));
    const out = await eventually('Encrypt works', encrypt);
    const back = await kms.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: out.CiphertextBlob, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }));
    expect(Buffer.from(back.Plaintext ?? []).toString()).to.equal('hello');
    expect((await kms.send(new GenerateRandomCommand({ NumberOfBytes: 16 }))).Plaintext).to.have.length(16);
  });

  it('when the HSM is frozen, Encrypt answers DependencyTimeoutException within the deadline, /healthz and /metrics still answer, and the timeout counter rises', async () => {
    const before = metric(await metrics(), 'kmsgw_hsm_timeouts_total', { operation: 'Encrypt' });
    server.freeze();
    try {
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        const err = await failure(encrypt());
        const ms = Date.now() - t0;
        expect(err.name).to.equal('DependencyTimeoutException');
        expect(err.$metadata.httpStatusCode).to.equal(503);
        expect(ms, 'answered within the deadline').to.be.at.most(DEADLINE_MS + SLACK_MS);
      }
      const health = await get(`${gw.url}/healthz`);
      expect(health.status).to.equal(200);
      expect(health.ms).to.be.below(DEADLINE_MS);
      const text = await metrics();
      expect(metric(text, 'kmsgw_hsm_timeouts_total', { operation: 'Encrypt' }) - before).to.equal(3);
      expect(metric(text, 'kmsgw_hsm_sessions', { state: 'quarantined' })).to.be.at.least(1);
      expect(metric(text, 'kmsgw_hsm_token_up')).to.equal(0);
      expect((await get(`${gw.url}/readyz`)).status).to.equal(503);
    } finally {
      server.thaw();
    }
  });

  it('when the HSM resumes, requests succeed again with no restart', async () => {
    await eventually('Encrypt works', encrypt);
    const text = await metrics();
    expect(metric(text, 'kmsgw_hsm_sessions', { state: 'quarantined' })).to.equal(0);
    expect(metric(text, 'kmsgw_hsm_circuit_open')).to.equal(0);
    expect(metric(text, 'kmsgw_hsm_token_up')).to.equal(1);
  });

  it('when the HSM is killed, Encrypt answers KeyUnavailableException and the key-unavailable counter rises', async () => {
    const before = metric(await metrics(), 'kmsgw_key_unavailable_total', { operation: 'Encrypt', key_id: keyId });
    await server.kill();
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const err = await failure(encrypt());
      expect(err.name).to.equal('KeyUnavailableException');
      expect(err.$metadata.httpStatusCode).to.equal(500);
      expect(Date.now() - t0).to.be.at.most(DEADLINE_MS + SLACK_MS);
    }
    const text = await metrics();
    expect(metric(text, 'kmsgw_key_unavailable_total', { operation: 'Encrypt', key_id: keyId }) - before).to.equal(3);
    expect(metric(text, 'kmsgw_hsm_token_up')).to.equal(0);
  });

  it('when the HSM is started again, the same gateway process recovers by itself', async () => {
    const pid = gw.child.pid;
    await server.start();
    await eventually('Encrypt works', encrypt);
    await eventually('ready', async () => expect((await get(`${gw.url}/readyz`)).status).to.equal(200));
    expect(gw.child.pid).to.equal(pid);
    expect(gw.child.exitCode).to.equal(null);
    expect(metric(await metrics(), 'kmsgw_hsm_recoveries_total', { result: 'ok' })).to.be.at.least(2);
  });

  it('under a load of concurrent requests, freezing, killing and restoring the HSM loses no request: each gets success or a retryable fault within the deadline, and the counters in /metrics and in a real Prometheus match what clients saw', async () => {
    // A real Prometheus scrapes the gateway every second through all of it.
    prom = await startPrometheus(
      ['global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:', '  - job_name: kms-hsm-gateway', '    static_configs:', `      - targets: ['127.0.0.1:${gw.port}']`, ''].join('\n'),
    );
    const p = prom;
    await waitFor('the first scrape', async () => ((await promValue(p, 'up{job="kms-hsm-gateway"}')) === 1 ? true : undefined));
    const before = await metrics();
    const promBefore = {
      timeouts: (await promValue(p, 'sum(kmsgw_hsm_timeouts_total{operation="Encrypt"})')) ?? 0,
      unavailable: (await promValue(p, 'sum(kmsgw_key_unavailable_total{operation="Encrypt"})')) ?? 0,
    };
    const seen = new Map<string, number>();
    let slowest = 0;
    let lastSuccess = 0;
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const t0 = Date.now();
        let outcome = 'success';
        try {
          await encrypt();
        } catch (e) {
          outcome = (e as { name: string }).name;
        }
        slowest = Math.max(slowest, Date.now() - t0);
        if (outcome === 'success') lastSuccess = Date.now();
        seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
      }
    };
    const load = Array.from({ length: 16 }, worker);
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await pause(1000);
    server.freeze();
    await pause(2500);
    server.thaw();
    await pause(2000);
    await server.kill();
    await pause(2500);
    await server.start();
    const restarted = Date.now();
    // No extra requests: the load itself must see the recovery.
    await eventually('the load succeeds again', async () => expect(lastSuccess).to.be.above(restarted));
    await pause(1500);
    stop = true;
    await Promise.all(load);
    const after = await metrics();
    const counted = (outcome: string) =>
      metric(after, 'kmsgw_requests_total', { operation: 'Encrypt', outcome }) - metric(before, 'kmsgw_requests_total', { operation: 'Encrypt', outcome });
    const summary = Object.fromEntries(seen);
    // The closing note quotes this line.
    console.log(`      load under faults: ${JSON.stringify(summary)}, slowest answer ${slowest} ms`);
    expect([...seen.keys()].every((k) => ['success', 'DependencyTimeoutException', 'KeyUnavailableException'].includes(k)), JSON.stringify(summary)).to.equal(true);
    expect(seen.get('success') ?? 0).to.be.above(0);
    expect(seen.get('DependencyTimeoutException') ?? 0, 'timeouts while frozen').to.be.above(0);
    expect(seen.get('KeyUnavailableException') ?? 0, 'unavailable while dead').to.be.above(0);
    expect(slowest).to.be.at.most(DEADLINE_MS + SLACK_MS);
    for (const outcome of ['success', 'DependencyTimeoutException', 'KeyUnavailableException'])
      expect(counted(outcome), `kmsgw_requests_total{outcome="${outcome}"}`).to.equal(seen.get(outcome) ?? 0);
    const timeouts = metric(after, 'kmsgw_hsm_timeouts_total', { operation: 'Encrypt' }) - metric(before, 'kmsgw_hsm_timeouts_total', { operation: 'Encrypt' });
    expect(timeouts).to.equal(seen.get('DependencyTimeoutException') ?? 0);
    const unavailable =
      metric(after, 'kmsgw_key_unavailable_total', { operation: 'Encrypt' }) - metric(before, 'kmsgw_key_unavailable_total', { operation: 'Encrypt' });
    expect(unavailable).to.equal(seen.get('KeyUnavailableException') ?? 0);
    // And the same counts through Prometheus' query API, once it scraped the end state.
    await waitFor('Prometheus to scrape the end state', async () => {
      const t = ((await promValue(p, 'sum(kmsgw_hsm_timeouts_total{operation="Encrypt"})')) ?? 0) - promBefore.timeouts;
      const u = ((await promValue(p, 'sum(kmsgw_key_unavailable_total{operation="Encrypt"})')) ?? 0) - promBefore.unavailable;
      return t === timeouts && u === unavailable ? true : undefined;
    });
    expect(await promValue(p, 'max_over_time(kmsgw_hsm_circuit_open[1m])')).to.equal(1);
    expect(await promValue(p, 'min_over_time(kmsgw_hsm_token_up[1m])')).to.equal(0);
    expect(await promValue(p, 'kmsgw_hsm_circuit_open')).to.equal(0);
  });

  it('stopping the gateway while the HSM is frozen and a call is stuck in it still ends the process', async () => {
    server.freeze();
    try {
      const err = await failure(encrypt());
      expect(err.name).to.equal('DependencyTimeoutException');
      const t0 = Date.now();
      await gw.stop();
      // 10 s of grace for calls in flight, then the process ends without joining the stuck thread.
      expect(Date.now() - t0).to.be.below(10_000 + 5_000);
      expect(gw.logs()).to.contain('HSM calls still stuck in the token');
    } finally {
      server.thaw();
    }
  });
});
