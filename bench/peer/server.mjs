// The benchmark's peer: panva's oidc-provider, set up for the same workload as
// Ostiary: client_credentials with RFC 9068 JWT access tokens signed ES256,
// client_secret_basic and private_key_jwt clients, introspection, revocation,
// open dynamic registration, all on loopback. Keys and clients come from the
// JSON file the benchmark writes (argv[2]); storage is the in-memory adapter.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const resource = config.audience;

const provider = new Provider(config.issuer, {
  jwks: { keys: [config.signing_jwk] },
  clients: config.clients,
  // Only an ES256 key is configured; the default RS256 for ID tokens would reject every client.
  clientDefaults: { id_token_signed_response_alg: 'ES256', grant_types: ['client_credentials'] },
  cookies: { keys: [config.cookie_key] },
  clientAuthMethods: ['client_secret_basic', 'private_key_jwt'],
  enabledJWA: { clientAuthSigningAlgValues: ['ES256'] },
  scopes: ['read'],
  ttl: { ClientCredentials: 300 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      // oidc-provider refuses to introspect its JWT access tokens, so the introspection
      // workload asks for an opaque token for config.opaque_audience and introspects that.
      getResourceServerInfo: (ctx, indicator) => (indicator === config.opaque_audience
        ? { scope: 'read', audience: indicator, accessTokenTTL: 300, accessTokenFormat: 'opaque' }
        : {
          scope: 'read',
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        }),
    },
  },
});

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`peer listening on ${config.issuer}`);
});
