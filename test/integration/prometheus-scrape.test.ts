/**
 * A real Prometheus server (the Debian `prometheus` binary) scraping a real
 * gateway every second, with the alert rules of config/prometheus/alerts.yml
 * loaded. A key object is deleted from the token behind the gateway's back
 * (pkcs11-tool, another process); clients then get KeyUnavailableException
 * for that key only, and the fault counters read back through Prometheus'
 * HTTP query API equal what the clients saw, and the key-unavailable alert
 * goes pending for that key.
 */
import { EncryptCommand } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import { join } from 'node:path';
import { ROOT, defaultConfig, kmsClient, makeToken, startGateway, tableKey, type GatewayProcess } from '../support/gateway.js';
import {
  deleteKeyObject,
  exposedMetricTypes,
  isExposed,
  metricNamesIn,
  promQuery,
  promValue,
  startPrometheus,
  waitFor,
  type PrometheusServer,
} from '../support/ops.js';

type Json = Record<string, any>;

const DOOMED = '6f1d2c3b-0a9e-4c8d-9b7a-1e2f3a4b5d01';
const DOOMED_LABEL = 'prom-doomed-aes';
const HEALTHY = '6f1d2c3b-0a9e-4c8d-9b7a-1e2f3a4b5d02';
/** KeyUnavailableException answers the clients get for the doomed key. */
const FAULTS = 5;

describe('a real Prometheus scraping a real gateway', function () {
  this.timeout(120_000);

  let gw: GatewayProcess | undefined;
  let prom: PrometheusServer | undefined;

  after(async () => {
    await prom?.stop();
    await gw?.stop();
  });

  it('reads back, through its query API, exactly the KeyUnavailableException answers clients got when a key object vanished from the token', async () => {
    // The label config/default.json's hsm.token names.
    const token = makeToken('kmsgw-dev');
    gw = await startGateway({
      token,
      config: {
        ...defaultConfig(),
        // No session copies (the schema's default): a copy would outlive the deleted token object.
        hsm: { ...(defaultConfig()['hsm'] as Record<string, unknown>), sessionKeyCopies: false },
        keys: [tableKey(DOOMED, DOOMED_LABEL, { aliases: ['alias/prom-doomed'] }), tableKey(HEALTHY, 'prom-healthy-aes')],
      },
    });
    const kms = kmsClient(gw.url);
    const encrypt = (KeyId: string) =>
      kms.send(new EncryptCommand({ KeyId, Plaintext: Buffer.from('scraped') })).then(
        () => 'success',
        (e: unknown) => (e as { name?: string }).name ?? String(e),
      );
    // Both keys work (their handles are now cached by the gateway).
    expect([await encrypt(DOOMED), await encrypt(HEALTHY)]).to.deep.equal(['success', 'success']);

    prom = await startPrometheus(
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(join(ROOT, 'config', 'prometheus', 'alerts.yml'))}`,
        'scrape_configs:',
        '  - job_name: kms-hsm-gateway',
        '    static_configs:',
        `      - targets: ['127.0.0.1:${gw.port}']`,
        '',
      ].join('\n'),
    );
    const p = prom;
    await waitFor('the first successful scrape', async () => ((await promValue(p, 'up{job="kms-hsm-gateway"}')) === 1 ? true : undefined));

    deleteKeyObject(token, DOOMED_LABEL);

    // The first fault starts the counter's series; Prometheus must see it
    // before the rest, or rate() (and so the alert) has nothing to compare.
    expect(await encrypt(DOOMED), gw.logs()).to.equal('KeyUnavailableException');
    await waitFor('Prometheus to read the first fault', async () => ((await promValue(p, 'sum(kmsgw_key_unavailable_total)')) === 1 ? true : undefined));
    const answers: string[] = [];
    for (let i = 1; i < FAULTS; i++) answers.push(await encrypt(DOOMED));
    expect(answers).to.deep.equal(Array(FAULTS - 1).fill('KeyUnavailableException'));
    // That key only: the other key of the same token still works.
    expect(await encrypt(HEALTHY)).to.equal('success');

    const read = await waitFor('Prometheus to read every fault', async () => {
      const total = await promValue(p, 'sum(kmsgw_key_unavailable_total)');
      return total === FAULTS ? total : undefined;
    });
    expect(read).to.equal(FAULTS);
    const byKey = await promQuery(p, 'kmsgw_key_unavailable_total');
    expect(byKey.map((r) => [r.metric['key_id'], r.metric['operation'], r.value])).to.deep.equal([[DOOMED, 'Encrypt', FAULTS]]);
    expect(await promValue(p, 'sum(kmsgw_requests_total{outcome="KeyUnavailableException"})')).to.equal(FAULTS);
    expect(await promValue(p, 'sum(kmsgw_requests_total{operation="Encrypt", outcome="success"})')).to.equal(3);
    expect(await promValue(p, 'sum(kmsgw_requests_total)')).to.equal(FAULTS + 3);
    // No timeouts: the series exist from the start, at 0.
    expect(await promValue(p, 'sum(kmsgw_hsm_timeouts_total)')).to.equal(0);

    // The alert rule from alerts.yml sees it, for the doomed key only (pending: `for: 1m`).
    const alert = await waitFor('KmsGatewayKeyUnavailable to be pending', async () => {
      const res = (await (await fetch(`${p.url}/api/v1/alerts`)).json()) as Json;
      return (res['data']['alerts'] as Json[]).find((a) => a['labels']['alertname'] === 'KmsGatewayKeyUnavailable');
    });
    expect(alert['state']).to.be.oneOf(['pending', 'firing']);
    expect(alert['labels']).to.deep.include({ key_id: DOOMED, operation: 'Encrypt', severity: 'critical', job: 'kms-hsm-gateway' });
  });

  it('loaded every alert rule of alerts.yml, evaluates them without error, and they query only metrics the gateway exports', async () => {
    expect(prom, 'the previous test started Prometheus').to.not.equal(undefined);
    const p = prom as PrometheusServer;
    const rules = await waitFor('every rule evaluated', async () => {
      const res = (await (await fetch(`${p.url}/api/v1/rules`)).json()) as Json;
      const all = (res['data']['groups'] as Json[]).flatMap((g) => g['rules'] as Json[]);
      return all.length > 0 && all.every((r) => r['health'] !== 'unknown') ? all : undefined;
    });
    expect(rules.map((r) => r['name']).sort()).to.deep.equal([
      'KmsGatewayDown',
      'KmsGatewayHighErrorRatio',
      'KmsGatewayHighLatency',
      'KmsGatewayHsmTimeouts',
      'KmsGatewayHsmTokenDown',
      'KmsGatewayKeyUnavailable',
    ]);
    for (const r of rules) expect(r['health'], `${r['name']}: ${r['lastError']}`).to.equal('ok');

    const types = exposedMetricTypes(await (await fetch(`${(gw as GatewayProcess).url}/metrics`)).text());
    const missing: string[] = [];
    for (const r of rules) {
      const names = metricNamesIn(String(r['query']));
      expect(names, `${r['name']}: ${r['query']}`).to.not.be.empty;
      // `up` is Prometheus' own, per scrape target.
      for (const n of names) if (n !== 'up' && !isExposed(n, types)) missing.push(`${r['name']}: ${n}`);
    }
    expect(missing, 'metrics the alert rules query but /metrics does not export').to.deep.equal([]);
    // The gateway is healthy and its token up: neither of those alerts is active.
    const res = (await (await fetch(`${p.url}/api/v1/alerts`)).json()) as Json;
    const active = (res['data']['alerts'] as Json[]).map((a) => a['labels']['alertname'] as string);
    expect(active).to.not.include.members(['KmsGatewayDown', 'KmsGatewayHsmTokenDown']);
  });
});
