/**
 * The HTTPS listener, through real gateway processes: a throwaway CA, a
 * server certificate for 127.0.0.1 and a client certificate made with the
 * `openssl` command in the test's temporary directory. The real
 * @aws-sdk/client-kms presenting the client certificate gets its answers;
 * without one the TLS handshake is refused. The AWS CLI (which cannot
 * present a client certificate) works against a listener without client
 * verification, trusting the CA through --ca-bundle. A key file others may
 * read, or a PIN file, stops start-up. Slow and stalled clients are cut off.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { expect } from 'chai';
import {
  DEMO_ACCESS_KEY_ID,
  DEMO_SECRET,
  REGION,
  awsCliEnv,
  defaultConfig,
  keyArn,
  makeToken,
  startExpectingFailure,
  startGateway,
  type GatewayProcess,
} from '../support/gateway.js';

type Json = Record<string, any>;

const AES_KEY_ID = '0b5e6a1c-7d43-4f0e-9a35-2c8d1e6f4a01';

interface Pki {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate from a CA the gateway does not trust. */
  strangerCert: string;
  strangerKey: string;
}

/** A throwaway CA, a server certificate (SAN IP:127.0.0.1) and client certificates, made with openssl. */
function makePki(): Pki {
  const base = process.env['KMSGW_TEST_TMP'] ?? tmpdir();
  const dir = mkdtempSync(join(base, 'pki-'));
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  // Extensions as strict verifiers (Python's ssl with X509_STRICT) want them.
  writeFileSync(
    f('ext.cnf'),
    [
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      '[server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      '[client]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = clientAuth',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  // A self-signed CA through `x509 -req -signkey`, which takes -extfile on OpenSSL 3.0 too.
  const selfSignedCa = (name: string) => {
    openssl('req', '-new', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-signkey', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '2', '-extfile', f('ext.cnf'), '-extensions', 'ca');
  };
  const leaf = (name: string, caName: string, section: string) => {
    openssl('req', '-new', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${caName}.pem`), '-CAkey', f(`${caName}.key`), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '2', '-extfile', f('ext.cnf'), '-extensions', section);
  };
  selfSignedCa('test-ca');
  leaf('server', 'test-ca', 'server');
  leaf('client', 'test-ca', 'client');
  selfSignedCa('stranger-ca');
  leaf('stranger', 'stranger-ca', 'client');
  for (const k of ['test-ca', 'server', 'client', 'stranger-ca', 'stranger']) chmodSync(f(`${k}.key`), 0o600);
  return {
    dir,
    caFile: f('test-ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    strangerCert: f('stranger.pem'),
    strangerKey: f('stranger.key'),
  };
}

/** The default config with one AES key (a fast start) and `listen` edited. */
function tlsConfig(listen: Json): Json {
  const c = defaultConfig() as Json;
  c['keys'] = [(c['keys'] as Json[])[0]];
  c['listen'] = { ...(c['listen'] as Json), ...listen };
  return c;
}

/** @aws-sdk/client-kms over HTTPS, trusting the test CA and presenting `client` when given. */
function tlsKmsClient(url: string, pki: Pki, client?: { cert: string; key: string }): KMSClient {
  const agent = new Agent({
    ca: readFileSync(pki.caFile),
    ...(client === undefined ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
  });
  return new KMSClient({
    endpoint: url,
    region: REGION,
    credentials: { accessKeyId: DEMO_ACCESS_KEY_ID, secretAccessKey: DEMO_SECRET },
    maxAttempts: 1,
    requestHandler: { httpsAgent: agent },
  });
}

/** One HTTPS request with node:https; resolves with the status, or rejects with the TLS/socket error. */
function httpsStatus(url: string, pki: Pki, client?: { cert: string; key: string }): Promise<number> {
  return httpsAnswer(url, pki, client).then((a) => a.status);
}

function httpsAnswer(url: string, pki: Pki, client?: { cert: string; key: string }): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${url}/`,
      {
        method: 'POST',
        ca: readFileSync(pki.caFile),
        ...(client === undefined ? {} : { cert: readFileSync(client.cert), key: readFileSync(client.key) }),
        headers: { 'x-amz-target': 'TrentService.ListKeys', 'content-type': 'application/x-amz-json-1.1' },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end('{}');
  });
}

/** Sockets the tests opened; destroyed after each test, so a failure cannot keep mocha alive. */
const openSockets: Duplex[] = [];

/** Resolves when the socket is closed by the other side, with whatever it received. */
function untilClosed(socket: Duplex): Promise<string> {
  openSockets.push(socket);
  return new Promise((resolve) => {
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => resolve(got));
  });
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // One attempt: the refused-CA case would otherwise retry for seconds.
    const env = { ...awsCliEnv(), AWS_MAX_ATTEMPTS: '1', AWS_RETRY_MODE: 'standard' };
    execFile('aws', args, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

describe('TLS: the HTTPS listener', function () {
  this.timeout(60_000);
  let pki: Pki;

  before(() => {
    pki = makePki();
  });

  afterEach(() => {
    for (const s of openSockets.splice(0)) s.destroy();
  });

  describe('with client certificate verification (listen.tls.clientCaFile)', function () {
    let gw: GatewayProcess;
    let url: string;

    before(async function () {
      gw = await startGateway({
        config: tlsConfig({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caFile } }),
      });
      url = `https://127.0.0.1:${gw.port}`;
    });

    after(async function () {
      await gw?.stop();
    });

    it('says it listens on an https:// URL', function () {
      expect(gw.logs()).to.include(`"url":"${url}"`);
    });

    it('serves the real AWS SDK presenting a client certificate from the configured CA', async function () {
      const sdk = tlsKmsClient(url, pki, { cert: pki.clientCert, key: pki.clientKey });
      try {
        const plaintext = Buffer.from('over TLS, with a client certificate');
        const enc = await sdk.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: plaintext }));
        expect(enc.KeyId).to.equal(keyArn(AES_KEY_ID));
        const dec = await sdk.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }));
        expect(Buffer.from(dec.Plaintext ?? new Uint8Array()).equals(plaintext)).to.equal(true);
      } finally {
        sdk.destroy();
      }
    });

    it('refuses the TLS handshake of a client without a certificate: no HTTP answer at all', async function () {
      const err = await httpsStatus(url, pki).then(
        (status) => new Error(`expected the handshake to fail, got HTTP ${status}`),
        (e: Error) => e,
      );
      expect(err.message).to.match(/certificate|alert|socket hang up|ECONNRESET/i);
      const sdk = tlsKmsClient(url, pki);
      try {
        const sdkErr = await sdk.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('x') })).then(
          () => undefined,
          (e: { $metadata?: { httpStatusCode?: number }; message: string }) => e,
        );
        expect(sdkErr, 'the SDK call must fail').to.not.equal(undefined);
        expect(sdkErr?.$metadata?.httpStatusCode, 'no HTTP status: the connection never got that far').to.equal(undefined);
      } finally {
        sdk.destroy();
      }
    });

    it('refuses a client certificate from another CA', async function () {
      const err = await httpsStatus(url, pki, { cert: pki.strangerCert, key: pki.strangerKey }).then(
        (status) => new Error(`expected the handshake to fail, got HTTP ${status}`),
        (e: Error) => e,
      );
      expect(err.message).to.match(/certificate|alert|socket hang up|ECONNRESET/i);
    });

    it('gives plain HTTP on the TLS port no KMS answer', async function () {
      const socket = netConnect(gw.port, '127.0.0.1');
      const closed = untilClosed(socket);
      socket.write('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}');
      expect(await closed).to.not.match(/x-amzn-requestid/i);
    });
  });

  // Two workers: the cluster primary hands each raw connection to a worker,
  // which does the TLS handshake and enforces the deadlines itself.
  describe('without client certificates, with a short request timeout, on two workers', function () {
    let gw: GatewayProcess;
    let url: string;

    before(async function () {
      gw = await startGateway({
        config: tlsConfig({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey }, requestTimeoutMs: 1500 }),
        workers: 2,
      });
      url = `https://127.0.0.1:${gw.port}`;
    });

    after(async function () {
      await gw?.stop();
    });

    it('serves the AWS CLI trusting the CA through --ca-bundle', async function () {
      const dir = mkdtempSync(join(process.env['KMSGW_TEST_TMP'] ?? tmpdir(), 'cli-'));
      writeFileSync(join(dir, 'plain.txt'), 'hello over https');
      const enc = await cli([
        'kms', 'encrypt', '--endpoint-url', url, '--ca-bundle', pki.caFile, '--key-id', 'alias/demo-aes',
        '--plaintext', `fileb://${join(dir, 'plain.txt')}`, '--query', 'CiphertextBlob', '--output', 'text',
      ]);
      expect(enc.code, enc.stderr).to.equal(0);
      writeFileSync(join(dir, 'cipher.bin'), Buffer.from(enc.stdout.trim(), 'base64'));
      const dec = await cli([
        'kms', 'decrypt', '--endpoint-url', url, '--ca-bundle', pki.caFile,
        '--ciphertext-blob', `fileb://${join(dir, 'cipher.bin')}`, '--query', 'Plaintext', '--output', 'text',
      ]);
      expect(dec.code, dec.stderr).to.equal(0);
      expect(Buffer.from(dec.stdout.trim(), 'base64').toString()).to.equal('hello over https');
    });

    it('is refused by the AWS CLI when the CA is not trusted', async function () {
      const res = await cli(['kms', 'list-keys', '--endpoint-url', url]);
      expect(res.code).to.not.equal(0);
      expect(res.stderr).to.match(/SSL|certificate/i);
    });

    it('serves the SDK without a client certificate', async function () {
      const sdk = tlsKmsClient(url, pki);
      try {
        const enc = await sdk.send(new EncryptCommand({ KeyId: 'alias/demo-aes', Plaintext: Buffer.from('no client cert needed') }));
        expect(enc.KeyId).to.equal(keyArn(AES_KEY_ID));
      } finally {
        sdk.destroy();
      }
    });

    it('answers over HTTPS with helmet\'s headers and no X-Powered-By', async function () {
      const { status, headers } = await httpsAnswer(url, pki);
      expect(status).to.equal(400); // unsigned
      expect(headers['x-powered-by']).to.equal(undefined);
      expect(headers['strict-transport-security']).to.be.a('string');
      expect(headers['x-content-type-options']).to.equal('nosniff');
      expect(headers['x-amzn-errortype']).to.equal('MissingAuthenticationTokenException');
    });

    it('cuts off a client that sends the headers and then nothing', async function () {
      const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: gw.port, ca: readFileSync(pki.caFile) });
      const closed = untilClosed(socket);
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      socket.write('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 100\r\n\r\n');
      // Closed by the server (the test's timeout is the bound), with Node's 408.
      expect(await closed).to.match(/^HTTP\/1\.1 408/);
    });

    it('cuts off a client that trickles its body byte by byte', async function () {
      const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port: gw.port, ca: readFileSync(pki.caFile) });
      const closed = untilClosed(socket);
      await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
      socket.write('POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 1000\r\n\r\n');
      let sent = 0;
      const trickle = setInterval(() => {
        if (!socket.writable) return;
        socket.write('{');
        sent++;
      }, 100);
      try {
        await closed;
      } finally {
        clearInterval(trickle);
      }
      expect(sent, 'the body was never complete').to.be.below(1000);
    });

    it('cuts off a client that connects and never starts the TLS handshake', async function () {
      const socket = netConnect(gw.port, '127.0.0.1');
      expect(await untilClosed(socket)).to.equal('');
    });
  });

  describe('start-up refusals', function () {
    it('refuses a TLS key file that group or others can read, naming listen.tls.keyFile', async function () {
      const loose = join(pki.dir, 'loose.key');
      writeFileSync(loose, readFileSync(pki.serverKey));
      chmodSync(loose, 0o644);
      const { code, stderr } = await startExpectingFailure({
        config: tlsConfig({ tls: { certFile: pki.serverCert, keyFile: loose } }),
      });
      expect(code).to.equal(2);
      expect(stderr).to.include('listen.tls.keyFile');
      expect(stderr).to.include('readable by group or others');
    });

    it('refuses a missing certificate file, naming listen.tls.certFile', async function () {
      const { code, stderr } = await startExpectingFailure({
        config: tlsConfig({ tls: { certFile: join(pki.dir, 'nope.pem'), keyFile: pki.serverKey } }),
      });
      expect(code).to.equal(2);
      expect(stderr).to.include('listen.tls.certFile');
    });

    it('refuses a PIN file that group or others can read, naming hsm.pin.file', async function () {
      const token = makeToken('kmsgw-dev');
      chmodSync(token.pinFile, 0o644);
      const { code, stderr } = await startExpectingFailure({ token, config: tlsConfig({}) });
      expect(code).to.equal(2);
      expect(stderr).to.include('hsm.pin.file');
      expect(stderr).to.include('readable by group or others');
    });
  });
});
