# Evaluates nix/module.nix without nixpkgs (CI has nix-instantiate but no channel): `lib` is a stub
# of the few functions the module calls, with builtins behind them, so the module's own logic (the
# settings checks against nix/variables.json, which unit settings get mkDefault, the root CLI
# wrapper) runs for real. The NixOS module system itself is not: a real NixOS test covers that.
{
  settings ? { },
  environmentFile ? null,
  smtpPasswordFile ? null,
  webhookSecretFile ? null,
  ntfyTokenFile ? null,
}:
let
  lib = rec {
    importJSON = path: builtins.fromJSON (builtins.readFile path);
    inherit (builtins)
      all
      attrNames
      elem
      filter
      mapAttrs
      concatStringsSep
      removeAttrs
      ;
    boolToString = value: if value then "true" else "false";
    toList = value: if builtins.isList value then value else [ value ];
    optionalAttrs = condition: attrs: if condition then attrs else { };
    optionalString = condition: text: if condition then text else "";
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (builtins.attrNames attrs);
    escapeShellArg = text: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString text) + "'";
    getExe = package: "${package}/bin/unitwatch";
    concatMapStringsSep = separator: f: list: concatStringsSep separator (map f list);
    mkEnableOption = _: { _type = "option"; };
    mkOption = option: option // { _type = "option"; };
    mkPackageOption = packages: name: _: {
      _type = "option";
      default = packages.${name};
    };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkDefault = content: {
      _type = "override";
      priority = 1000;
      inherit content;
    };
    types = {
      str = "str";
      int = "int";
      bool = "bool";
      package = "package";
      listOf = _: "listOf";
      oneOf = _: "oneOf";
      attrsOf = _: "attrsOf";
      nullOr = _: "nullOr";
      strMatching = _: "strMatching";
    };
  };
  pkgs = {
    callPackage = _: _: "/nix/store/stub-unitwatch";
    writeShellScriptBin = name: text: { inherit name text; };
  };
  config = {
    services.unitwatch = {
      enable = true;
      package = "/nix/store/stub-unitwatch";
      journalAccess = true;
      inherit
        settings
        environmentFile
        smtpPasswordFile
        webhookSecretFile
        ntfyTokenFile
        ;
    };
    systemd.package = "/nix/store/stub-systemd";
  };
  module = import ../../nix/module.nix { inherit config lib pkgs; };
  content = module.config.content;
  service = content.systemd.services.unitwatch;
in
{
  failed = map (assertion: assertion.message) (builtins.filter (assertion: !assertion.assertion) content.assertions);
  mkDefault = builtins.filter (name: (service.serviceConfig.${name}._type or null) == "override") (
    builtins.attrNames service.serviceConfig
  );
  fixed = builtins.filter (name: !((service.serviceConfig.${name}._type or null) == "override")) (
    builtins.attrNames service.serviceConfig
  );
  inherit (service) environment after wants;
  loadCredential = service.serviceConfig.LoadCredential or [ ];
  packageDefault = module.options.services.unitwatch.package.default;
  cli = (builtins.head content.environment.systemPackages).text;
}
