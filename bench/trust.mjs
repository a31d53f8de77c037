// Entry point of `npm run bench:trust`: registers the TypeScript hooks, then runs bench/trust.ts.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
await import('./trust.ts');
