// One linter for the repository; the layer rules keep the architecture of README.md honest.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (files, forbidden) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((dir) => ({
          group: [`**/${dir}/*`, `../${dir}/*`, `../../${dir}/*`],
          message: `this layer may not import src/${dir} (see README, Architecture)`,
        })),
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
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.property.name='toLowerCase']",
          message:
            'domains are made canonical once, by src/domain-name.ts (domainName, parseDomainName, parseAddress); for text that is not a domain, say why in an eslint-disable comment',
        },
      ],
    },
  },
  layer(['src/engine/**/*.ts'], ['config', 'reconcile', 'cli', 'control', 'demo']),
  layer(['src/config/**/*.ts'], ['engine', 'reconcile', 'cli', 'control', 'demo']),
  layer(['src/reconcile/**/*.ts'], ['engine', 'cli', 'demo']),
  layer(['src/control/**/*.ts'], ['config', 'reconcile', 'cli', 'demo']),
  layer(['src/pki/**/*.ts'], ['engine', 'config', 'reconcile', 'cli', 'control', 'demo']),
);
