# Builds unitwatch from this checkout with nixpkgs' npm tooling.
#
# The lock file carries integrity hashes but no download addresses, and both nixpkgs
# fetchers (fetchNpmDeps and importNpmLock) skip every entry without `resolved`, which
# would leave npm offline with nothing to install. So the addresses are filled in here,
# at evaluation time, from each entry's name and version, and importNpmLock fetches every
# tarball with the lock file's own integrity hash. No npmDepsHash exists to refresh:
# after `npm install` changes package-lock.json, the next build follows it.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  makeWrapper,
  # Any Node >= 20 (package.json engines); the default LTS of the nixpkgs in use.
  nodejs,
  # Where tarballs are fetched from: the registry npm itself uses by default.
  npmRegistry ? "https://registry.npmjs.org",
}:

let
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../tsconfig.build.json
      ../src
      ../nix
      ../docs
      # package.json `files` lists it; tolerate a checkout without it.
      (lib.fileset.maybeMissing ../README.md)
    ];
  };

  package = lib.importJSON ../package.json;
  lock = lib.importJSON ../package-lock.json;

  # "node_modules/a/node_modules/@s/b" installs "@s/b"; an aliased entry names its real package.
  packageName =
    path: entry:
    entry.name or (lib.last (lib.splitString "node_modules/" path));

  # The registry's tarball layout: <registry>/<name>/-/<name without scope>-<version>.tgz
  tarballUrl =
    name: version:
    "${npmRegistry}/${name}/-/${lib.last (lib.splitString "/" name)}-${version}.tgz";

  fetchable =
    path: entry:
    path != ""
    && lib.hasPrefix "node_modules/" path
    && !(entry.link or false)
    && !(entry.inBundle or false)
    && entry ? version
    && entry ? integrity;

  withResolved = lock // {
    packages = lib.mapAttrs (
      path: entry:
      if fetchable path entry && !(entry ? resolved) then
        entry // { resolved = tarballUrl (packageName path entry) entry.version; }
      else
        entry
    ) lock.packages;
  };
in
buildNpmPackage {
  pname = package.name;
  inherit (package) version;
  inherit src;
  inherit nodejs;

  npmDeps = importNpmLock {
    inherit package;
    packageLock = withResolved;
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # The install scripts in the tree are dbus-next's optional native `usocket`, used for passing
  # file descriptors over D-Bus, which unitwatch never does, and esbuild's check of its own
  # binary, which runs without it; skipping them keeps the build free of node-gyp.
  npmRebuildFlags = [ "--ignore-scripts" ];

  # `npm run build` is tsc, then esbuild (a devDependency, its binary from the npm registry like
  # any package) bundling dist/cli.js; npmInstallHook then copies what `files` lists, prunes dev
  # dependencies and wraps each `bin` entry so it runs with this pinned nodejs.
  nativeBuildInputs = [ makeWrapper ];

  # One wrapper, ours: npmInstallHook has already wrapped the `bin` entry without `--`, and Node 20
  # consumes `--env-file` anywhere on its own command line, even after the script, so
  # `unitwatch run --env-file F` would never reach unitwatch; `--` ends Node's options.
  postInstall = ''
    rm -f $out/bin/unitwatch
    makeWrapper ${lib.getExe nodejs} $out/bin/unitwatch \
      --add-flags "-- $out/lib/node_modules/${package.name}/dist/cli.js"
  '';

  passthru = {
    inherit withResolved;
  };

  meta = {
    description = package.description;
    license = lib.licenses.mit;
    mainProgram = "unitwatch";
    platforms = lib.platforms.linux;
  }
  # From package.json once it names an address (it does not yet; none is invented here). A
  # `changelog` belongs next to it when the project has one.
  // lib.optionalAttrs (package ? homepage) { inherit (package) homepage; };
}
