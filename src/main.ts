/**
 * Entry point: reads the config named by KMSGW_CONFIG (default
 * config/default.json, the embedded SoftHSM2 set-up), with KMSGW_DATA_DIR
 * substituted and KMSGW_PORT applied, then starts the gateway and listens.
 * A bad config or an unreachable token stops start-up with a message that
 * says which.
 */
import { resolve } from 'node:path';
import { ConfigError, loadConfig } from './config/config.js';
import { startGateway } from './gateway.js';
import { createLogger } from './log.js';

async function main(): Promise<void> {
  const log = createLogger();
  const env = process.env;
  const dataDir = resolve(env['KMSGW_DATA_DIR'] ?? '.data');
  const path = resolve(env['KMSGW_CONFIG'] ?? 'config/default.json');
  let gateway;
  try {
    const config = loadConfig({ path, dataDir, port: env['KMSGW_PORT'] });
    gateway = await startGateway(config, log, env);
    log.info({ url: gateway.url, port: gateway.port, keys: gateway.keys.size, hsm: gateway.hsm.describe() }, 'kms-hsm-gateway listening');
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`kms-hsm-gateway: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`kms-hsm-gateway: cannot start: ${(e as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    gateway.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
