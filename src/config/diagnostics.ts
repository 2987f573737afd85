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

/**
 * `FILE:LINE:COL  CODE  message` then `  hint: ...` when there is a hint; a warning's message
 * starts with "warning:". One line (or two) per diagnostic, each ending in a newline.
 */
export function formatDiagnostics(diagnostics: Diagnostic[]): string {
  return sortDiagnostics(diagnostics)
    .map((d) => {
      const severity = d.severity === 'warning' ? 'warning: ' : '';
      const head = `${d.file}:${d.line}:${d.col}  ${d.code}  ${severity}${d.message}\n`;
      return d.hint === undefined ? head : `${head}  hint: ${d.hint}\n`;
    })
    .join('');
}
