// Test-only OpenID provider (panva/oidc-provider) for the oauth2 tests:
//   node oidc.js PORT CERT KEY AUDIENCE
// Serves HTTPS on 127.0.0.1:PORT (PORT 0 = pick one) with the PEM
// certificate and key, issuer https://127.0.0.1:PORT, and prints
// "listening on PORT". Clients viewer, operator and admin (secret
// "<name>-secret") get client_credentials access tokens as RS256 JWTs
// (resource indicators: `resource=AUDIENCE` makes `aud`, any other resource
// is allowed too) with `roles: [<name>]`. SIGUSR2 rotates the signing key:
// a new key (new kid) signs from then on, the old one stays in the JWKS;
// it prints "rotated to KID". Runs until killed.
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');

(async () => {
  const { default: Provider } = await import('oidc-provider');
  const [portArg, certFile, keyFile, audience] = process.argv.slice(2);
  const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) });
  await new Promise((resolve) => server.listen(Number(portArg), '127.0.0.1', resolve));
  const port = server.address().port;
  const issuer = `https://127.0.0.1:${port}`;

  let generation = 0;
  const newKey = () => {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    generation += 1;
    return { ...privateKey.export({ format: 'jwk' }), kid: `key-${generation}`, alg: 'RS256', use: 'sig' };
  };
  const roles = ['viewer', 'operator', 'admin'];
  const makeProvider = (keys) => new Provider(issuer, {
    jwks: { keys },
    clients: roles.map((name) => ({
      client_id: name,
      client_secret: `${name}-secret`,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: 'api',
          audience: resourceIndicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: (ctx, token) => ({ roles: [token.clientId] }),
  });

  let keys = [newKey()];
  let provider = makeProvider(keys);
  server.on('request', (req, res) => provider.callback()(req, res));
  process.on('SIGUSR2', () => {
    keys = [newKey(), ...keys];  // the first key of an algorithm signs
    provider = makeProvider(keys);
    console.log(`rotated to ${keys[0].kid}`);
  });
  console.log(`listening on ${port}`);
})().catch((e) => { console.error(e); process.exit(1); });
