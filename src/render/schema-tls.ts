/** `spec.hosts` and `spec.tls` of an App (and of an Environment's app override): public names and their HTTPS. */
import { z } from 'zod';
import { exactlyOne } from './schema-rules.js';

/** A DNS name: labels of letters, digits and inner "-", at least two labels, no wildcard, no port. */
const HOST_PATTERN = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/i;

export const HostName = z
  .string()
  .regex(HOST_PATTERN, { error: 'must be a DNS name like app.example.com (letters, digits, "-" and ".", no wildcard, no port, no scheme)' })
  .transform((h) => h.toLowerCase());

export const HostsSchema = z
  .array(HostName)
  .min(1)
  .describe('Public names routed to this app on the shared web ports (80 and 443 unless the engine says otherwise); local target');

const SecretPem = z.strictObject({
  file: z.string().min(1).describe('A SOPS-encrypted YAML, JSON or dotenv file, relative to this document, inside the repository'),
  key: z.string().min(1).describe('The key holding the PEM text (a top-level key or a dotted path)'),
});

export const DEFAULT_ACME_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
/** `hsts: true`: one year, the usual value. */
export const DEFAULT_HSTS_SECONDS = 31_536_000;

export const TlsSchema = z
  .strictObject({
    acme: z
      .strictObject({
        email: z.email({ error: 'must be an e-mail address (the ACME account contact)' }),
        directory: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL of an ACME directory' }).optional().describe(`ACME directory URL (default: Let's Encrypt, ${DEFAULT_ACME_DIRECTORY})`),
        caFile: z.string().min(1).optional().describe('PEM file of the CA that serves the directory (a private CA, Pebble), relative to this document, inside the repository'),
        challenge: z.enum(['http-01', 'tls-alpn-01']).optional().describe('How the CA checks the names: "http-01" (default; port 80 must reach the proxy) or "tls-alpn-01" (port 443 only)'),
      })
      .optional()
      .describe('Certificates from an ACME CA (Let\'s Encrypt by default), HTTP-01 answered by the proxy, renewed before expiry'),
    certificate: z
      .strictObject({ cert: SecretPem.describe('The PEM certificate chain'), key: SecretPem.describe('Its PEM private key') })
      .optional()
      .describe('A certificate kept in the repository, SOPS-encrypted'),
    hsts: z
      .union([z.boolean(), z.int().min(0).max(63_072_000)])
      .optional()
      .describe('Strict-Transport-Security on HTTPS answers: true (max-age one year) or a max-age in seconds'),
  })
  .check(exactlyOne(['acme', 'certificate']))
  .describe('HTTPS for the app\'s hosts on the shared HTTPS port; HTTP requests for them are redirected (308); local target');

export type TlsSpec = z.output<typeof TlsSchema>;
