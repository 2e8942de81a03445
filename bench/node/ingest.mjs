/**
 * Node SDK ingest client for larkgate's benchmarks.
 *
 *   node ingest.mjs --base-url http://127.0.0.1:PORT --app-id ID --app-secret S
 *
 * Connects the official Node SDK's long-connection client
 * (`@larksuiteoapi/node-sdk`, `lark.WSClient`) to the platform at --base-url
 * (e.g. lark-emulator) and registers an `im.message.receive_v1` handler that
 * does nothing, so what the harness measures is the SDK's own cost of
 * receiving, decoding, dispatching and acking events.
 *
 * The SDK takes a custom domain as a full base URL: `formatDomain` passes any
 * value other than `Domain.Feishu`/`Domain.Lark` through unchanged, and
 * endpoint discovery posts to `${domain}/callback/ws/endpoint` (see
 * `WSConfig.wsConfigUrl` in node_modules/@larksuiteoapi/node-sdk/lib/index.js).
 * A trailing slash is stripped here so the path has no `//`.
 *
 * Runs until SIGTERM/SIGINT.
 */
import * as lark from '@larksuiteoapi/node-sdk';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${a} needs a value`);
    out[key] = value;
    i++;
  }
  for (const k of ['base-url', 'app-id', 'app-secret']) {
    if (!out[k]) throw new Error(`--${k} is required`);
  }
  return out;
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`ingest.mjs: ${e.message}`);
  console.error('usage: node ingest.mjs --base-url URL --app-id ID --app-secret S');
  process.exit(2);
}

const baseUrl = args['base-url'].replace(/\/+$/, '');

const wsClient = new lark.WSClient({
  appId: args['app-id'],
  appSecret: args['app-secret'],
  domain: baseUrl,
  loggerLevel: lark.LoggerLevel.error,
});

wsClient.start({
  eventDispatcher: new lark.EventDispatcher({}).register({
    'im.message.receive_v1': async () => {},
  }),
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    try {
      wsClient.close();
    } catch {
      /* exiting anyway */
    }
    process.exit(0);
  });
}
