import type { SendmailTransportConfig, SmtpTransportConfig } from './config.js';

/**
 * Turns a transport failure a user can act on into words: what is wrong and which setting fixes
 * it. Pure: reads the error (and its causes) and the configured transport, nothing else.
 * `undefined` when the original message is as good as any explanation.
 */
export function explainSmtpError(
  error: unknown,
  transport: SmtpTransportConfig | SendmailTransportConfig | undefined,
): string | undefined {
  if (transport?.kind !== 'smtp') return undefined;
  const { codes, text } = facts(error);
  const at = `${transport.host.includes(':') ? `[${transport.host}]` : transport.host}:${transport.port}`;
  const has = (...wanted: string[]) => wanted.some((code) => codes.has(code));

  if (
    transport.secure &&
    (has('ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG') ||
      /wrong version number|packet length too long/i.test(text))
  ) {
    return `the server at ${at} does not speak TLS on connect; use smtp:// (STARTTLS) for port 587/25`;
  }
  if (
    !transport.secure &&
    (/Error upgrading connection with STARTTLS/.test(text) || /does not support required STARTTLS/.test(text))
  ) {
    const why =
      transport.user === undefined
        ? 'UNITWATCH_SMTP_STARTTLS=require'
        : 'STARTTLS is always required when UNITWATCH_SMTP_URL names a user (credentials are only sent over TLS; UNITWATCH_SMTP_STARTTLS cannot lower that)';
    const fix =
      transport.user === undefined
        ? 'enable STARTTLS on the relay, use smtps:// if it speaks TLS on connect (port 465), or set UNITWATCH_SMTP_STARTTLS=opportunistic to send in the clear'
        : 'enable STARTTLS on the relay, or use smtps:// if it speaks TLS on connect (port 465)';
    return `the server at ${at} does not offer STARTTLS and ${why}: nothing was sent, no password either; ${fix}`;
  }
  if (
    has(
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'UNABLE_TO_GET_ISSUER_CERT',
      'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    ) ||
    /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate/i.test(
      text,
    )
  ) {
    const trusted =
      transport.caFile === undefined
        ? 'a CA this machine trusts'
        : `a CA in ${transport.caFile} or the defaults`;
    return `the certificate of ${at} is not signed by ${trusted} (self-signed or a private CA): set UNITWATCH_SMTP_CA_FILE to the certificate of the CA that signed it (PEM)`;
  }
  if (
    has('CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID') ||
    /certificate has expired|certificate is not yet valid/i.test(text)
  ) {
    return `the certificate of ${at} has expired or is not yet valid: renew it on the relay (or check this machine's clock)`;
  }
  if (has('ERR_TLS_CERT_ALTNAME_INVALID') || /does not match certificate's altnames/i.test(text)) {
    return `the certificate of ${at} is not issued for "${transport.host}": put a name the certificate holds in UNITWATCH_SMTP_URL`;
  }
  if (!transport.secure && transport.port === 465 && /Greeting never received/i.test(text)) {
    return `the server at ${at} sent no SMTP greeting: port 465 expects TLS on connect, use smtps://`;
  }
  if (has('ECONNREFUSED') || /ECONNREFUSED/.test(text)) {
    return `nothing accepts connections at ${at}: is the relay running, and is the port right?`;
  }
  if (has('ENOTFOUND', 'EAI_AGAIN') || /ENOTFOUND|EAI_AGAIN/.test(text)) {
    return `the host name ${transport.host} does not resolve`;
  }
  if (has('EAUTH') && transport.user !== undefined) {
    return `the server refused the login of "${transport.user}": check the password (UNITWATCH_SMTP_PASSWORD_FILE or the credential smtp-password)`;
  }
  return undefined;
}

/** Every `code`/`originalCode` and message along the error's cause chain. */
function facts(error: unknown): { codes: Set<string>; text: string } {
  const codes = new Set<string>();
  const texts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    for (const key of ['code', 'originalCode'] as const) {
      const value = (current as Record<string, unknown>)[key];
      if (typeof value === 'string') codes.add(value);
    }
    const message = (current as { message?: unknown }).message;
    if (typeof message === 'string') texts.push(message);
    current = (current as { cause?: unknown }).cause;
  }
  if (typeof error === 'string') texts.push(error);
  return { codes, text: texts.join('\n') };
}
