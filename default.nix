# One-line use from a NixOS configuration:
#   imports = [ (import /path/to/unitwatch { }).nixosModule ];
# Build the package alone:
#   nix-build /path/to/unitwatch -A unitwatch
# `pkgs` is only evaluated when the package is asked for, so importing the module does not
# pull in a second nixpkgs: the module builds with the system's own pkgs.
{
  pkgs ? import <nixpkgs> { },
}:
{
  nixosModule = ./nix/module.nix;
  unitwatch = pkgs.callPackage ./nix/package.nix { };
}
