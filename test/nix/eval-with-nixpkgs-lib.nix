# Evaluates nix/module.nix through the real NixOS module system (lib.evalModules of a nixpkgs lib
# you pass in), where eval-module.nix uses a stub: option types, mkIf, mkDefault priorities and
# merging are nixpkgs' own. The options the module sets outside services.unitwatch (systemd,
# users, environment, assertions) are declared here loosely, since nixos/modules is not loaded.
#   nix-instantiate --eval --strict --json test/nix/eval-with-nixpkgs-lib.nix \
#     --arg lib 'import /path/to/nixpkgs/lib' --arg site '{ UNITWATCH_TO = "ops@example.org"; }'
{
  lib,
  settings ? {
    UNITWATCH_TO = "ops@example.org";
  },
  # A site's own definitions, merged with the module's as in a configuration.nix.
  site ? { },
  userServices ? { },
}:
let
  inherit (lib) mkOption types;
  loose = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };
  stubs = {
    options = {
      systemd.services = loose;
      systemd.user.services = loose;
      systemd.package = mkOption { type = types.anything; };
      users.users = loose;
      users.groups = loose;
      environment.systemPackages = mkOption {
        type = types.listOf types.anything;
        default = [ ];
      };
      assertions = mkOption {
        type = types.listOf types.anything;
        default = [ ];
      };
    };
  };
  # Shaped like a derivation, so types.package takes it without building anything.
  stubPackage = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };
  pkgs = {
    callPackage = _: _: stubPackage "unitwatch";
    writeShellScriptBin = name: text: { inherit name text; };
    writeShellScript = name: text: "/nix/store/00000000000000000000000000000000-${name}";
  };
  evaluated = lib.evalModules {
    modules = [
      ../../nix/module.nix
      stubs
      {
        config = {
          services.unitwatch = {
            enable = true;
            package = stubPackage "unitwatch";
            inherit settings userServices;
          };
          systemd.package = stubPackage "systemd";
        };
      }
      { config = site; }
    ];
    specialArgs = { inherit pkgs; };
  };
  inherit (evaluated) config;
  service = config.systemd.services.unitwatch;
in
{
  failed = map (assertion: assertion.message) (builtins.filter (a: !a.assertion) config.assertions);
  inherit (service) serviceConfig environment;
  users = builtins.attrNames config.users.users;
  userUnit = config.systemd.user.services.unitwatch or null;
}
