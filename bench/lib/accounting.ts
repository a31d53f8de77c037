import { setTimeout as sleep } from 'node:timers/promises';
import type { ReceivedMail } from '../../test/harness/smtp-sink.js';

/** Every failing unit of the bench is an instance of this template, with a name unique to the bench run. */
export const FAIL_TEMPLATE = 'bench-fail@';
const NAMED_UNIT = /bench-fail@([A-Za-z0-9_:.-]+?)\.service/g;

export interface AccountedMail {
  readonly receivedAtMs: number;
  readonly units: readonly string[];
  /** `X-Unitwatch-Event` (failed, digest, …); empty for the template's mails. */
  readonly event: string;
}

/**
 * unitwatch's closing line on what else is down ("Also failing on host: a, b and 40 more."): a
 * mention, not a notification of those failures, so it does not account for them.
 */
const FAILING_NOW_LINE = /^(Also|Still) failing on .*$/gm;

/**
 * Accounts failures by the unit names found anywhere in a received mail (subject, headers, body),
 * so a digest listing many units counts for each of them, whatever the daemon's mail looks like.
 * Recovery notices are not accounts of a failure and are skipped.
 */
export class MailAccountant {
  readonly #mails: readonly ReceivedMail[];
  #indexed = 0;
  readonly #firstSeenMs = new Map<string, number>();
  readonly accounted: AccountedMail[] = [];
  skippedRecoveries = 0;

  constructor(mails: readonly ReceivedMail[]) {
    this.#mails = mails;
  }

  /** Indexes mails that arrived since the last call. */
  update(): void {
    while (this.#indexed < this.#mails.length) {
      const mail = this.#mails[this.#indexed++];
      if (mail === undefined) continue;
      const event = String(mail.parsed.headers.get('x-unitwatch-event') ?? '');
      if (/recover/i.test(event)) {
        this.skippedRecoveries++;
        continue;
      }
      const header = String(mail.parsed.headers.get('x-unitwatch-unit') ?? '');
      const body = (mail.parsed.text ?? '').replace(FAILING_NOW_LINE, '');
      const haystack = `${mail.parsed.subject ?? ''}\n${header}\n${body}`;
      const units = new Set<string>();
      for (const match of haystack.matchAll(NAMED_UNIT)) units.add(`${FAIL_TEMPLATE}${match[1]}.service`);
      this.accounted.push({ receivedAtMs: mail.receivedAtMs, units: [...units], event });
      for (const unit of units) {
        if (!this.#firstSeenMs.has(unit)) this.#firstSeenMs.set(unit, mail.receivedAtMs);
      }
    }
  }

  firstSeenMs(unit: string): number | undefined {
    this.update();
    return this.#firstSeenMs.get(unit);
  }

  missing(units: readonly string[]): string[] {
    this.update();
    return units.filter((unit) => !this.#firstSeenMs.has(unit));
  }

  /** Resolves true once every unit is named in some mail, false if `timeoutMs` passes first. */
  async waitFor(units: readonly string[], timeoutMs: number, pollMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.missing(units).length === 0) return true;
      await sleep(pollMs);
    }
    return this.missing(units).length === 0;
  }

  /** Mails naming at least one of `units`. */
  mailsAbout(units: ReadonlySet<string>): AccountedMail[] {
    this.update();
    return this.accounted.filter((mail) => mail.units.some((unit) => units.has(unit)));
  }
}
