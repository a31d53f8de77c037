// Entry point of `npm run bench`: registers the TypeScript hooks, then runs bench/main.ts.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
await import('./main.ts');
