import { describe, expect, it } from 'vitest';
import { classifyMailFailure, MailDeliveryError, mailFailureFacts } from '../../src/errors/mail-error.js';

const smtp = (message: string, fields: Record<string, unknown>) => Object.assign(new Error(message), fields);

describe('mail failure classification (issue 11: permanent errors end)', () => {
  it.each([
    [
      'an SMTP 550 (recipient refused)',
      smtp('Message failed: 550 5.1.1 no such user', { responseCode: 550, code: 'EENVELOPE' }),
      'permanent',
    ],
    [
      'an SMTP 552 (message too big)',
      smtp('Message failed: 552 too big', { responseCode: 552, code: 'EMESSAGE' }),
      'permanent',
    ],
    ['an SMTP 451', smtp('Message failed: 451 try later', { responseCode: 451 }), 'transient'],
    [
      'an SMTP 421 (closing)',
      smtp('421 shutting down', { responseCode: 421, code: 'EPROTOCOL' }),
      'transient',
    ],
    [
      'a refused login (535)',
      smtp('Invalid login: 535 5.7.8', { responseCode: 535, code: 'EAUTH' }),
      'operator',
    ],
    ['missing credentials', smtp('Missing credentials for "PLAIN"', { code: 'EAUTH' }), 'operator'],
    ['a refused connection', smtp('connect ECONNREFUSED 127.0.0.1:25', { code: 'ECONNECTION' }), 'transient'],
    ['a timeout', smtp('Greeting never received', { code: 'ETIMEDOUT' }), 'transient'],
    ['a socket error', smtp('read ECONNRESET', { code: 'ESOCKET' }), 'transient'],
    [
      'an envelope nodemailer refuses (no recipients)',
      smtp('No recipients defined', { code: 'EENVELOPE' }),
      'permanent',
    ],
    ['sendmail EX_NOUSER (67)', smtp('Sendmail exited with code 67', { code: 'ESENDMAIL' }), 'permanent'],
    ['sendmail EX_DATAERR (65)', smtp('Sendmail exited with code 65', { code: 'ESENDMAIL' }), 'permanent'],
    ['sendmail EX_USAGE (64)', smtp('Sendmail exited with code 64', { code: 'ESENDMAIL' }), 'permanent'],
    ['sendmail EX_NOHOST (68)', smtp('Sendmail exited with code 68', { code: 'ESENDMAIL' }), 'permanent'],
    ['sendmail EX_TEMPFAIL (75)', smtp('Sendmail exited with code 75', { code: 'ESENDMAIL' }), 'transient'],
    [
      'sendmail EX_UNAVAILABLE (69)',
      smtp('Sendmail exited with code 69', { code: 'ESENDMAIL' }),
      'transient',
    ],
    ['sendmail EX_CONFIG (78)', smtp('Sendmail exited with code 78', { code: 'ESENDMAIL' }), 'operator'],
    [
      'a sendmail that is not there',
      smtp('Sendmail command not found, process exited with code 127', { code: 'ESENDMAIL' }),
      'operator',
    ],
    [
      'sendmail killed by a signal',
      smtp('Sendmail was terminated by SIGKILL', { code: 'ESENDMAIL' }),
      'transient',
    ],
    [
      'an address sendmail would read as an option',
      smtp('Can not send mail. Invalid envelope addresses.', { code: 'ESENDMAIL' }),
      'permanent',
    ],
    ['something unknown', 'a string, not an Error', 'transient'],
  ])('%s is %s', (_, cause, kind) => {
    expect(classifyMailFailure(mailFailureFacts(cause))).toBe(kind);
    expect(new MailDeliveryError('smtp://relay:25', cause).kind).toBe(kind);
  });

  it('says a sendmail exit status by name in the message, and keeps the facts', () => {
    const error = new MailDeliveryError(
      'sendmail /usr/sbin/sendmail',
      smtp('Sendmail exited with code 67', { code: 'ESENDMAIL' }),
    );
    expect(error.message).toBe(
      'mail delivery through sendmail /usr/sbin/sendmail failed: Sendmail exited with code 67 (exit status 67 (EX_NOUSER))',
    );
    expect(error.exitStatus).toBe(67);
    expect(error.permanent).toBe(true);
    expect(error.name).toBe('MailDeliveryError');
  });

  it('keeps the SMTP response code', () => {
    const error = new MailDeliveryError('smtp://relay:25', smtp('550 no', { responseCode: 550 }));
    expect(error.responseCode).toBe(550);
    expect(error.permanent).toBe(true);
  });
});
