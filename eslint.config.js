import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'dist-bench/', 'bench/results/', 'coverage/', 'src/generated/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-control-regex': 'off',
    },
  },
  {
    files: ['src/**'],
    rules: {
      // On Node 20 an AsyncLocalStorage in use hooks every promise of the process: 8 % more CPU per
      // mutation (src/request-scope.ts). Per-request state is handed down explicitly instead.
      'no-restricted-imports': [
        'error',
        { paths: ['node:async_hooks', 'async_hooks'].map((name) => ({ name, message: 'Hand request state down explicitly (see src/request-scope.ts).' })) },
      ],
    },
  },
  { files: ['demo/src/**'], languageOptions: { globals: { ...globals.browser } } },
);
