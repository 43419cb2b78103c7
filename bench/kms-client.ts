/**
 * KMS requests to the gateway, signed with SigV4 by @smithy/signature-v4
 * as the SDKs sign them (test/support/gateway.ts signHeaders does the same),
 * with the demo principal of config/demo-credentials.json. A signed request
 * stays valid for the gateway's 5-minute clock-skew window, so wrk can replay
 * one for a run.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import type { WireRequest } from './wrk.js';

const ROOT = join(import.meta.dirname, '..', '..');

interface Credentials {
  principals: { accessKeys: { accessKeyId: string; secretAccessKey: string }[] }[];
}

function signer(): SignatureV4 {
  const creds = JSON.parse(readFileSync(join(ROOT, 'config', 'demo-credentials.json'), 'utf8')) as Credentials;
  const key = creds.principals[0]?.accessKeys[0];
  if (key === undefined) throw new Error('config/demo-credentials.json has no access key');
  const { region } = JSON.parse(readFileSync(join(ROOT, 'config', 'default.json'), 'utf8')) as { region: string };
  return new SignatureV4({ credentials: key, region, service: 'kms', sha256: Sha256 });
}

export class KmsClient {
  private readonly signer = signer();
  private readonly url: URL;

  constructor(url: string) {
    this.url = new URL(url);
  }

  /** `TrentService.<operation>` with a JSON body, signed now. */
  async sign(operation: string, body: unknown): Promise<WireRequest> {
    const text = JSON.stringify(body);
    const signed = await this.signer.sign({
      method: 'POST',
      protocol: this.url.protocol,
      hostname: this.url.hostname,
      port: Number(this.url.port),
      path: '/',
      query: {},
      headers: {
        host: this.url.host,
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': `TrentService.${operation}`,
      },
      body: text,
    });
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k !== 'host') headers[k] = String(v);
    // wrk sends "Host" itself unless the script names it with exactly this spelling.
    return { method: 'POST', path: '/', headers: { Host: this.url.host, ...headers }, body: text };
  }

  /**
   * Sends a signed request exactly as wrk will (same headers, Host included),
   * on a connection of its own: an idle keep-alive connection that the
   * gateway closes meanwhile would fail a POST, which is never retried.
   */
  send(req: WireRequest): Promise<{ status: number; body: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const out = request(new URL(req.path, this.url), { method: req.method, headers: req.headers, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('error', reject);
        res.on('end', () => {
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            body = { raw: text.slice(0, 200) };
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      out.on('error', reject);
      out.end(req.body);
    });
  }

  /** Signs and sends, up to `tries` times while the gateway answers a 5xx; throws unless it answers 200. */
  async call(operation: string, body: unknown, tries = 1): Promise<Record<string, unknown>> {
    for (let i = 1; ; i++) {
      const res = await this.send(await this.sign(operation, body));
      if (res.status === 200) return res.body;
      if (res.status < 500 || i >= tries) throw new Error(`${operation} answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
  }
}
