// coversHost, the one rule for whether a certificate's names cover a host (validate's
// organization certificate, receive's EHLO note, send): the exact name, or a wildcard that is the
// whole left-most label over a parent of two labels at least. Property tests over generated names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { coversHost } from '../../src/certificate-names.js';
import { domainName } from '../../src/domain-name.js';

/** An LDH label, lower case, 1-12 characters. */
const label = fc
  .stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/)
  .filter((l) => !/^[0-9]+$/.test(l));
const labels = (min: number, max: number) => fc.array(label, { minLength: min, maxLength: max });
const name = (min: number, max: number) => labels(min, max).map((ls) => ls.join('.'));

/** The spellings a certificate may use for a canonical name: case and one trailing dot. */
const spelled = (canonical: string) =>
  fc
    .tuple(
      fc.array(fc.boolean(), { minLength: canonical.length, maxLength: canonical.length }),
      fc.boolean(),
    )
    .map(([upper, dot]) => {
      const cased = [...canonical]
        .map((c, i) => (upper[i] === true ? c.toUpperCase() : c))
        .join('');
      return dot ? `${cased}.` : cased;
    });

const RUNS = { numRuns: 300 };

describe('coversHost', () => {
  it('covers a host by its own name, in any case and with one trailing dot', () => {
    fc.assert(
      fc.property(
        name(1, 5).chain((host) => fc.tuple(fc.constant(host), spelled(host))),
        ([host, written]) => {
          fc.pre(domainName(host) === host);
          assert.ok(coversHost([written], host), `${written} covers ${host}`);
        },
      ),
      RUNS,
    );
  });

  it('lets *.parent cover exactly one whole left-most label, when the parent has two labels', () => {
    fc.assert(
      fc.property(label, labels(1, 4), label, (left, parentLabels, deeper) => {
        const parent = parentLabels.join('.');
        const host = `${left}.${parent}`;
        fc.pre(domainName(host) === host);
        const wildcard = `*.${parent}`;
        assert.equal(
          coversHost([wildcard], host),
          parentLabels.length >= 2,
          `${wildcard} / ${host}`,
        );
        assert.equal(coversHost([wildcard], parent), false, `${wildcard} never covers ${parent}`);
        assert.equal(coversHost([wildcard], `${deeper}.${host}`), false, 'one label only');
      }),
      RUNS,
    );
  });

  it('never lets a wildcard over a single label (a public suffix) cover anything', () => {
    fc.assert(
      fc.property(label, label, (left, tld) => {
        assert.equal(coversHost([`*.${tld}`], `${left}.${tld}`), false);
        assert.equal(coversHost([`*`], left), false);
      }),
      RUNS,
    );
  });

  it('treats a partial or misplaced wildcard as covering nothing', () => {
    const misplaced = fc
      .tuple(label, label, name(2, 3), fc.integer({ min: 0, max: 4 }))
      .map(([a, b, parent, shape]) => {
        const host = `${a}${b}.${parent}`;
        const names = [
          `${a}*.${parent}`, // prefix wildcard
          `*${b}.${parent}`, // suffix wildcard
          `${a}*${b}.${parent}`, // infix wildcard
          `${a}${b}.*.${parent.split('.').slice(1).join('.')}`, // not left-most
          `*.*.${parent}`, // two wildcards
        ];
        return { host, certificateName: names[shape] as string };
      });
    fc.assert(
      fc.property(misplaced, ({ host, certificateName }) => {
        fc.pre(domainName(host) === host);
        assert.equal(coversHost([certificateName], host), false, `${certificateName} / ${host}`);
      }),
      RUNS,
    );
  });

  it('covers nothing for a host that is not a domain name, whatever the names', () => {
    const notAName = fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV4().map((v4) => `[${v4}]`),
      fc.constant(''),
      fc.constant('.'),
      name(2, 3).map((n) => `*.${n}`),
      name(2, 3).map((n) => `${n}..`),
      name(2, 3).map((n) => `%61${n}`),
    );
    const anyNames = fc.array(
      fc.oneof(
        fc.string(),
        name(1, 4),
        name(2, 4).map((n) => `*.${n}`),
        fc.constant(''),
      ),
      { maxLength: 5 },
    );
    fc.assert(
      fc.property(notAName, anyNames, (host, names) => {
        fc.pre(domainName(host) === undefined);
        assert.equal(coversHost([...names, host], host), false, host);
      }),
      RUNS,
    );
  });

  it('ignores names the certificate spells loosely: percent-escapes, full-width letters', () => {
    assert.equal(coversHost(['%6dail.adatum.com'], 'mail.adatum.com'), false);
    assert.equal(coversHost(['ｍail.adatum.com'], 'mail.adatum.com'), false);
    assert.equal(
      coversHost(['*.adatum.com'], 'ｍail.adatum.com'),
      true,
      'the host is canonicalized',
    );
    assert.equal(coversHost(['xn--bcher-kva.example'], 'bücher.example'), true);
    assert.equal(coversHost(['bücher.example'], 'xn--bcher-kva.example'), true);
  });

  it('covers when any one of the names does, and only then', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            name(1, 4),
            name(2, 4).map((n) => `*.${n}`),
            fc.string(),
          ),
          {
            maxLength: 6,
          },
        ),
        name(2, 4),
        (names, host) => {
          const one = names.some((n) => coversHost([n], host));
          assert.equal(coversHost(names, host), one);
        },
      ),
      RUNS,
    );
  });
});
