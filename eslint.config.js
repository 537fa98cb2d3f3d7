import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import { layersPlugin } from './lint/layers.js'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tap/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      // `import { type X }` alone still loads X's module at run time (verbatimModuleSyntax): write `import type`.
      '@typescript-eslint/no-import-type-side-effects': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'No default exports.' }],
      'no-throw-literal': 'error',
    },
  },
  {
    // The dependency direction of docs/ARCHITECTURE.md.
    files: ['src/**/*.ts'],
    plugins: { radchain: layersPlugin },
    rules: { 'radchain/layers': 'error' },
  },
  {
    files: ['src/chain/**/*.ts', 'src/consensus/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Chain and consensus take time from block headers or an injected clock.' },
        { object: 'Math', property: 'random', message: 'Chain and consensus are deterministic.' },
      ],
    },
  },
)
