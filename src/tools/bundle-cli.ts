import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

/**
 * `npm run build`'s second step: the dist/cli.js tsc wrote becomes one file holding unitwatch and
 * the dependencies it starts with. Node 20 resolves, reads, compiles and links every ES module
 * apart, and a start loaded some 180 of them, 95 of them zod's; as one file, READY=1 with 1,000
 * units came about 70 ms sooner in interleaved runs, and idle RSS some 1–2 MiB lower (docs/benchmarks.md).
 * The other files tsc wrote stay, for the tools and the test fixtures that import them.
 */
const entry = fileURLToPath(new URL('../cli.js', import.meta.url));

/** Left as imports of node_modules, resolved at run time as before. */
const EXTERNAL = [
  // Imported at the first send (MailTransport): bundled, it would be parsed at every start again.
  'nodemailer',
  // dbus-next's optional native modules (fd passing, X11 bus discovery), which unitwatch never loads.
  'usocket',
  'x11',
];

/**
 * zod re-exports its ~60 translations as `z.locales`, a fifth of the bundle that unitwatch never
 * reads: its messages are English, which zod imports from locales/en.js itself. Should zod ever
 * import a name from the index, the build fails on the missing export rather than ship without it.
 */
const withoutZodLocales: Plugin = {
  name: 'without-zod-locales',
  setup(bundler) {
    bundler.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)
        ? { path: 'zod-locales', namespace: 'without-zod-locales' }
        : undefined,
    );
    bundler.onLoad({ filter: /.*/, namespace: 'without-zod-locales' }, () => ({
      contents: 'export {};',
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [entry],
  outfile: entry,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: EXTERNAL,
  plugins: [withoutZodLocales],
  // dbus-next and pino are CommonJS and require Node's own modules; an ES module has no `require`.
  banner: {
    js: "import { createRequire as __unitwatchRequire } from 'node:module';\nconst require = __unitwatchRequire(import.meta.url);",
  },
  // Chained to tsc's maps: `node --enable-source-maps` shows src/ lines in a stack.
  sourcemap: true,
  logLevel: 'warning',
});
