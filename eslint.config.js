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
  layer(['src/engine/**/*.ts'], ['config', 'reconcile', 'cli', 'control', 'demo']),
  layer(['src/config/**/*.ts'], ['engine', 'reconcile', 'cli', 'control', 'demo']),
  layer(['src/reconcile/**/*.ts'], ['engine', 'cli', 'demo']),
  layer(['src/control/**/*.ts'], ['config', 'reconcile', 'cli', 'demo']),
  layer(['src/pki/**/*.ts'], ['engine', 'config', 'reconcile', 'cli', 'control', 'demo']),
);
