// A real OpenID provider (panva/oidc-provider) for Sikker's OIDC client tests. TEST ONLY:
// it exposes its private keys at /test/private-jwks, rotates them on POST /test/rotate, and
// sets a person's groups on POST /test/groups/<user> (a JSON list).
// Env: PORT, REDIRECT_URI, CLIENT_SECRET. Prints "listening PORT" when ready.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const people = {
  alice: { email: 'alice@example.com', name: 'Alice Admin', groups: ['platform', 'everyone'] },
  bob: { email: 'bob@example.com', name: 'Bob Builder', groups: ['contractors'] },
};

function key(alg) {
  const pair = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...pair.privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg, use: 'sig' };
}
let keys = [key('RS256'), key('ES256')];

const client = (id, alg) => ({
  client_id: id,
  client_secret: process.env.CLIENT_SECRET,
  redirect_uris: [process.env.REDIRECT_URI],
  grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
  id_token_signed_response_alg: alg,
});

function provider() {
  const oidc = new Provider(issuer, {
    clients: [client('sikker', 'RS256'), client('sikker-es', 'ES256')],
    jwks: { keys },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
    conformIdTokenClaims: false, // put the profile claims in the ID token of the code flow too
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: { email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
    cookies: { keys: ['test-only-cookie-key'] },
    async findAccount(ctx, id) {
      if (!people[id]) return undefined;
      const claims = { sub: id, preferred_username: id, email_verified: true, ...people[id] };
      return { accountId: id, claims: async () => claims };
    },
  });
  return oidc.callback();
}

let handler = provider();
createServer((req, res) => {
  if (req.url === '/test/private-jwks') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ keys }));
  }
  if (req.url === '/test/rotate' && req.method === 'POST') {
    keys = [key('RS256'), key('ES256')]; // new kids; the old keys are gone from the JWKS
    handler = provider(); // the in-memory adapter (sessions, grants) is shared
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
  }
  const groups = req.url.match(/^\/test\/groups\/(\w+)$/);
  if (groups && req.method === 'POST' && people[groups[1]]) { // change a person's groups
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    return req.on('end', () => {
      people[groups[1]].groups = JSON.parse(body);
      res.setHeader('content-type', 'application/json');
      res.end(body);
    });
  }
  return handler(req, res);
}).listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
