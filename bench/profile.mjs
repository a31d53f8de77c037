// Entry point of `npm run bench:profile`: registers the TypeScript hooks, then runs bench/profile.ts.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
await import('./profile.ts');
