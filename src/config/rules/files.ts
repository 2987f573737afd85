// DS016: files the manifests name must exist, be readable and hold the PEM they should; the
// message names the file, never its contents. DS104 warns of a private key others can read.
import type { Diagnostic } from '../../model.js';
import { error, warning } from '../diagnostics.js';
import { label, shorten, specValueAt } from '../manifest-objects.js';
import type { RuleContext } from './context.js';

export function checkFiles({ material }: RuleContext): Diagnostic[] {
  const diagnostics: Diagnostic[] = material.fileProblems.map((problem) => {
    const shown =
      problem.written === problem.resolved
        ? shorten(problem.written, 200)
        : `${shorten(problem.written, 200)} (${shorten(problem.resolved, 200)})`;
    return error(
      'DS016',
      specValueAt(problem.object, problem.path ?? [problem.field]),
      `${label(problem.object)}: ${problem.field} ${shown} ${problem.reason}`,
      problem.reason === 'does not exist'
        ? 'paths are relative to this manifest file; for a lab, `domsec certs lab -f DIR` writes the files the manifests in DIR name'
        : undefined,
    );
  });
  if (process.platform !== 'win32') {
    const dkim = material.dkimKey;
    if (dkim !== undefined && (dkim.keyFileMode & 0o077) !== 0) {
      const mode = dkim.keyFileMode.toString(8).padStart(4, '0');
      diagnostics.push(
        warning(
          'DS104',
          specValueAt(dkim.object, ['tlsReporting', 'dkim', 'keyFile']),
          `${label(dkim.object)}: tlsReporting.dkim.keyFile is readable by group or others (mode ${mode})`,
          'chmod 600 the key file',
        ),
      );
    }
    for (const [certificate, loaded] of material.certificates) {
      if ((loaded.keyFileMode & 0o077) === 0) continue;
      const mode = loaded.keyFileMode.toString(8).padStart(4, '0');
      diagnostics.push(
        warning(
          'DS104',
          specValueAt(certificate, ['keyFile']),
          `${label(certificate)}: keyFile is readable by group or others (mode ${mode})`,
          'chmod 600 the key file',
        ),
      );
    }
  }
  return diagnostics;
}
