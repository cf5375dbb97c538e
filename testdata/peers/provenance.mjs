// Signs provenance attestations with sigstore-js (the signer npm itself uses for
// `npm publish --provenance`) against a Fulcio CA and a Rekor log of @sigstore/mock served
// on loopback. Prints the bundles with a trust root that names that CA and log the way
// Sigstore's public-good trust root names its own.
//
// usage: node provenance.mjs NAME@VERSION=SHA512_HEX | file:FILENAME=SHA256_HEX …
//        (prints {trusted_root, bundles: [one per argument]})
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mock = require('@sigstore/mock');
const { generateKeyPair } = require('@sigstore/mock/dist/util/key');
const sigstore = require('sigstore');

// `NAME@VERSION=SHA512` attests an npm tarball; `file:FILENAME=SHA256` a PyPI release file.
const subjects = process.argv.slice(2).map((a) => {
  const [spec, digest] = a.split('=');
  if (spec.startsWith('file:')) {
    return { subject: { name: spec.slice(5), digest: { sha256: digest } }, predicateType: 'https://docs.pypi.org/attestations/publish/v1' };
  }
  const at = spec.lastIndexOf('@');
  const [name, version] = [spec.slice(0, at), spec.slice(at + 1)];
  return { subject: { name: `pkg:npm/${name.replace('@', '%40')}@${version}`, digest: { sha512: digest } }, predicateType: 'https://slsa.dev/provenance/v1' };
});

function serve(handler) {
  return new Promise((resolve) => {
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', async () => {
        const r = await handler.fn(body);
        res.writeHead(r.statusCode, { 'Content-Type': r.contentType || 'application/json' });
        res.end(r.response);
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const caKeys = generateKeyPair('prime256v1');
const logKeys = generateKeyPair('prime256v1');
const ctlog = await mock.initializeCTLog(caKeys);
const ca = await mock.initializeCA(caKeys, ctlog);
const fulcio = await serve(mock.fulcioHandler(ca, { strict: true }));
const rekorURL = 'http://127.0.0.1:' + 0;
const tlog = await mock.initializeTLog(rekorURL, logKeys);
const rekor = await serve(mock.rekorHandler(tlog, { strict: true }));

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
const token = `${b64url({ alg: 'none' })}.${b64url({
  iss: 'https://token.actions.githubusercontent.com',
  sub: 'https://github.com/example/server/.github/workflows/release.yml@refs/heads/main',
  aud: 'sigstore',
})}.`;
const bundles = [];
for (const { subject, predicateType } of subjects) {
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [subject],
    predicateType,
    predicate: {
      buildDefinition: { buildType: 'https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1' },
      runDetails: { builder: { id: 'https://github.com/actions/runner/github-hosted' } },
    },
  };
  bundles.push(await sigstore.attest(Buffer.from(JSON.stringify(statement)), 'application/vnd.in-toto+json', {
    fulcioURL: `http://127.0.0.1:${fulcio.address().port}`,
    rekorURL: `http://127.0.0.1:${rekor.address().port}`,
    identityToken: token,
    retry: 0,
  }));
}

const der = (k) => k.export({ type: 'spki', format: 'der' }).toString('base64');
const logId = require('node:crypto').createHash('sha256').update(logKeys.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
const trusted_root = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [{
    baseUrl: rekorURL,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: der(logKeys.publicKey), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: '2000-01-01T00:00:00Z' } },
    logId: { keyId: logId },
  }],
  certificateAuthorities: [{
    subject: { organization: 'sigstore-mock', commonName: 'sigstore-mock' },
    uri: 'http://127.0.0.1',
    certChain: { certificates: [{ rawBytes: Buffer.from(ca.rootCertificate).toString('base64') }] },
    validFor: { start: '2000-01-01T00:00:00Z' },
  }],
  ctlogs: [],
  timestampAuthorities: [],
};
console.log(JSON.stringify({ trusted_root, bundles }));
fulcio.close();
rekor.close();
