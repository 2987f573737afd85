// The one meaning a plain scalar of a manifest has: YAML 1.2's core schema, resolved exactly as
// the `yaml` package resolves it (the package that finds positions for diagnostics), written as
// a js-yaml schema (the package that reads the data). js-yaml's own core schema differs at the
// edges (`0b101` is 5 there and a string in YAML 1.2, `-.5` a string there and -0.5 here), and its
// default schema adds YAML 1.1's timestamps, `<<` merge keys, `!!binary`, `!!set` and more: none of
// them is in this one, so `<<` is an ordinary key and an unknown tag is an error.
import jsYaml from 'js-yaml';

const NULL = /^(?:~|[Nn]ull|NULL)$/;
const BOOLEAN = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const INTEGER = /^[-+]?[0-9]+$/;
const OCTAL = /^0o[0-7]+$/;
const HEXADECIMAL = /^0x[0-9a-fA-F]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;
const EXPONENT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const SPECIAL = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;

// An empty scalar reaches resolve as null (js-yaml's own null type takes it the same way).
const empty = new jsYaml.Type('tag:yaml.org,2002:null', {
  kind: 'scalar',
  resolve: (data: unknown) => data === null || (typeof data === 'string' && NULL.test(data)),
  construct: () => null,
});

const boolean = new jsYaml.Type('tag:yaml.org,2002:bool', {
  kind: 'scalar',
  resolve: (data: unknown) => typeof data === 'string' && BOOLEAN.test(data),
  construct: (data: string) => /^[Tt]/.test(data),
});

const integer = new jsYaml.Type('tag:yaml.org,2002:int', {
  kind: 'scalar',
  resolve: (data: unknown) =>
    typeof data === 'string' && (INTEGER.test(data) || OCTAL.test(data) || HEXADECIMAL.test(data)),
  construct: (data: string) =>
    OCTAL.test(data)
      ? parseInt(data.slice(2), 8)
      : HEXADECIMAL.test(data)
        ? parseInt(data.slice(2), 16)
        : parseInt(data, 10),
});

const float = new jsYaml.Type('tag:yaml.org,2002:float', {
  kind: 'scalar',
  resolve: (data: unknown) =>
    typeof data === 'string' && (FLOAT.test(data) || EXPONENT.test(data) || SPECIAL.test(data)),
  construct: (data: string) => {
    if (!SPECIAL.test(data)) return parseFloat(data);
    if (/nan$/i.test(data)) return NaN;
    return data.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  },
});

/**
 * Strings, sequences and mappings, and the core schema's null (`~`, `null`, empty), booleans
 * (`true`, `False`, ...; not `yes` or `on`), integers (decimal, `0o` octal, `0x` hex) and floats
 * (`1.5`, `1e3`, `.inf`, `.nan`).
 */
export const MANIFEST_SCHEMA = jsYaml.FAILSAFE_SCHEMA.extend({
  implicit: [empty, boolean, integer, float],
});
