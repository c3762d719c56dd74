// The tests' OpenID provider: panva's oidc-provider, on loopback, with its development
// interactions (a login form that takes any account id, then a consent page). Its client, its
// signing key and its people come from the JSON file the test writes (argv[2]): each person is
// an account id with the claims the provider tells about them (email, email_verified, name,
// groups); an id not listed signs in with no email at all. Storage is the in-memory adapter.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const provider = new Provider(config.issuer, {
  clients: [config.client],
  jwks: { keys: [config.signing_jwk] },
  cookies: { keys: [config.cookie_key] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // The default (true) keeps the scopes' claims out of the ID token of a code flow: Ostiary
  // then reads them from the userinfo endpoint, as it must from providers that do the same.
  conformIdTokenClaims: config.conform_id_token_claims ?? true,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const person = config.people[id] ?? {};
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...person };
      },
    };
  },
});

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc provider listening on ${config.issuer}`);
});
