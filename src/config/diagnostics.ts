// Diagnostics as validate prints them: `FILE:LINE:COL  CODE  message`, an indented hint, sorted
// by position so that one file's problems read top to bottom.
import type { Diagnostic, Severity } from '../model.js';
import type { SourcePosition } from './yaml-documents.js';

export function error(
  code: string,
  at: SourcePosition,
  message: string,
  hint?: string,
): Diagnostic {
  return diagnostic('error', code, at, message, hint);
}

export function warning(
  code: string,
  at: SourcePosition,
  message: string,
  hint?: string,
): Diagnostic {
  return diagnostic('warning', code, at, message, hint);
}

function diagnostic(
  severity: Severity,
  code: string,
  at: SourcePosition,
  message: string,
  hint: string | undefined,
): Diagnostic {
  return {
    code,
    severity,
    message,
    file: at.file,
    line: at.line,
    col: at.col,
    ...(hint === undefined ? {} : { hint }),
  };
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  if (a.file !== b.file) return a.file < b.file ? -1 : 1;
  if (a.line !== b.line) return a.line - b.line;
  if (a.col !== b.col) return a.col - b.col;
  return a.code < b.code ? -1 : a.code > b.code ? 1 : 0;
}

export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort(compareDiagnostics);
}

export interface FormatOptions {
  /**
   * Show at most this many warnings of each code, then one line counting the rest (as Terraform
   * does), so that a rule firing for 10,000 partners does not bury the plan. Errors are all shown.
   */
  warningsPerCode?: number;
}

/**
 * `FILE:LINE:COL  CODE  message` then `  hint: ...` when there is a hint; a warning's message
 * starts with "warning:". One line (or two) per diagnostic, each ending in a newline.
 */
export function formatDiagnostics(diagnostics: Diagnostic[], options: FormatOptions = {}): string {
  const limit = options.warningsPerCode ?? Number.POSITIVE_INFINITY;
  const shown = new Map<string, number>();
  const lines: string[] = [];
  for (const d of sortDiagnostics(diagnostics)) {
    if (d.severity === 'warning') {
      const count = (shown.get(d.code) ?? 0) + 1;
      shown.set(d.code, count);
      if (count > limit) continue;
    }
    const severity = d.severity === 'warning' ? 'warning: ' : '';
    const head = `${d.file}:${d.line}:${d.col}  ${d.code}  ${severity}${d.message}\n`;
    lines.push(d.hint === undefined ? head : `${head}  hint: ${d.hint}\n`);
  }
  for (const [code, count] of shown) {
    if (count <= limit) continue;
    const more = (count - limit).toLocaleString('en-US');
    lines.push(
      `... and ${more} more ${code} warnings like these (domsec validate lists them all)\n`,
    );
  }
  return lines.join('');
}
