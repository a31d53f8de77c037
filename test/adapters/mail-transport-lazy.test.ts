import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MailConfig } from '../../src/adapters/mail-transport.js';
import { SmtpSink } from '../harness/smtp-sink.js';

// Counts the imports of nodemailer in this file's module graph; the real module is still what runs.
const imports = vi.hoisted(() => ({ nodemailer: 0 }));
vi.mock('nodemailer', async (importOriginal) => {
  imports.nodemailer++;
  return importOriginal();
});

const sink = new SmtpSink();

beforeAll(() => sink.start());
afterAll(() => sink.stop());

describe('nodemailer is loaded at the first send, not at start-up (issue 14, item 6)', () => {
  it('is not imported by the daemon and its transport until a mail is sent, and then once', async () => {
    // The daemon's whole module graph, as `unitwatch run` imports it.
    await import('../../src/daemon.js');
    const { MailTransport } = await import('../../src/adapters/mail-transport.js');
    const config: MailConfig = {
      from: 'unitwatch@web1',
      to: ['ops@example.org'],
      hostname: 'web1',
      transport: {
        kind: 'smtp',
        url: sink.url,
        host: '127.0.0.1',
        port: sink.port,
        secure: false,
        startTls: 'opportunistic',
        user: undefined,
        passwordFile: undefined,
        passwordSource: undefined,
        caFile: undefined,
      },
    };
    const transport = new MailTransport(config, undefined);
    transport.start();
    expect(imports.nodemailer).toBe(0);

    const mail = (n: number) => ({
      subject: `[unitwatch] lazy ${n}`,
      text: 'body\n',
      headers: {},
      messageId: `<lazy-${n}@web1>`,
    });
    // Two sends at once share the one import and the one pooled transporter.
    await Promise.all([transport.send(mail(1)), transport.send(mail(2))]);
    transport.stop();
    expect(imports.nodemailer).toBe(1);
    await sink.waitFor((mails) => mails.length >= 2, 5000, 'both mails');
    expect(sink.mails.map((received) => received.parsed.subject).sort()).toEqual([
      '[unitwatch] lazy 1',
      '[unitwatch] lazy 2',
    ]);
  });
});
