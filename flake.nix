{
  description = "unitwatch: mail when a systemd unit fails";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      nixosModules.default = ./nix/module.nix;
      nixosModules.unitwatch = ./nix/module.nix;
      packages = forAll (pkgs: rec {
        unitwatch = pkgs.callPackage ./nix/package.nix { };
        default = unitwatch;
      });
      overlays.default = final: _prev: { unitwatch = final.callPackage ./nix/package.nix { }; };
    };
}
