// One linter for the repository; the layer rules keep the architecture of README.md honest.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// One naming style for the engine's log events: `area.what-happened`, dot-separated kebab case.
const KEBAB_EVENTS = {
  selector:
    "CallExpression[callee.property.name='log'][arguments.length>=2] > Literal.arguments:nth-child(2)[value=/^(?![a-z]+(-[a-z]+)*\\.[a-z]+(-[a-z]+)*$)/]",
  message: "name log events 'area.what-happened' (dot-separated kebab case, like partner.refused)",
};

// The other layers reach the engine through its facade only, src/engine/index.ts (one rule per
// files entry: a second no-restricted-imports for the same files would replace the first).
const ENGINE_FACADE = {
  group: [
    '**/engine/**',
    '../engine/**',
    '../../engine/**',
    '!**/engine/index.js',
    '!../engine/index.js',
    '!../../engine/index.js',
  ],
  message: 'import the engine from src/engine/index.ts, its facade (see README, Architecture)',
};

const CANONICAL_DOMAINS = {
  selector: "CallExpression[callee.property.name='toLowerCase']",
  message:
    'domains are made canonical once, by src/domain-name.ts (domainName, parseDomainName, parseAddress); for text that is not a domain, say why in an eslint-disable comment',
};

const layer = (files, forbidden, extra = []) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...forbidden.map((dir) => ({
            group: [`**/${dir}/*`, `../${dir}/*`, `../../${dir}/*`],
            message: `this layer may not import src/${dir} (see README, Architecture)`,
          })),
          ...extra,
        ],
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'var/', 'test-output/'] },
  { files: ['**/*.ts', '**/*.js', '**/*.mjs'] },
  { languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  // One canonical form per domain, made by src/domain-name.ts at the boundary: a toLowerCase()
  // anywhere else is how a second spelling of an identity creeps in. Text that is not a domain
  // (a header field name, a local part, a file extension) says so in a disable comment.
  {
    files: ['src/**/*.ts'],
    ignores: ['src/domain-name.ts', 'src/pki/**'],
    rules: { 'no-restricted-syntax': ['error', CANONICAL_DOMAINS, KEBAB_EVENTS] },
  },
  // no-restricted-imports does not look at import(): the facade holds for a lazy load too.
  {
    files: ['src/cli/**/*.ts', 'src/control/**/*.ts', 'src/demo/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        CANONICAL_DOMAINS,
        KEBAB_EVENTS,
        {
          selector: 'ImportExpression[source.value=/(^|\\/)engine\\/(?!index\\.js$)/]',
          message: ENGINE_FACADE.message,
        },
      ],
    },
  },
  layer(['src/engine/**/*.ts'], ['config', 'reconcile', 'cli', 'control', 'demo']),
  layer(['src/config/**/*.ts'], ['engine', 'reconcile', 'cli', 'control', 'demo']),
  layer(['src/reconcile/**/*.ts'], ['engine', 'cli', 'demo']),
  layer(['src/control/**/*.ts'], ['config', 'reconcile', 'cli', 'demo'], [ENGINE_FACADE]),
  layer(['src/cli/**/*.ts', 'src/demo/**/*.ts'], [], [ENGINE_FACADE]),
  layer(['src/pki/**/*.ts'], ['engine', 'config', 'reconcile', 'cli', 'control', 'demo']),
);
