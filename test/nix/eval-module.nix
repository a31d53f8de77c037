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
  # As the module system would hand them over: each user's entry with both fields.
  userServices ? { },
  enable ? true,
  notify ? true,
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
      concatLists
      removeAttrs
      ;
    concatStrings = concatStringsSep "";
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    boolToString = value: if value then "true" else "false";
    toList = value: if builtins.isList value then value else [ value ];
    optionalAttrs = condition: attrs: if condition then attrs else { };
    optionals = condition: list: if condition then list else [ ];
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
      submodule = _: "submodule";
    };
  };
  pkgs = {
    callPackage = _: _: "/nix/store/stub-unitwatch";
    writeShellScriptBin = name: text: { inherit name text; };
    # Interpolated into ExecStart as its store path; this stub's "path" also carries the script
    # between two marker lines, so that the test can read (and run) what the user unit starts.
    writeShellScript = name: text: {
      outPath = "/nix/store/stub-${name}\n#script\n${text}#end\n";
      inherit name text;
    };
  };
  config = {
    services.unitwatch = {
      package = "/nix/store/stub-unitwatch";
      journalAccess = true;
      inherit notify;
      inherit
        enable
        settings
        environmentFile
        smtpPasswordFile
        webhookSecretFile
        ntfyTokenFile
        userServices
        ;
    };
    systemd.package = "/nix/store/stub-systemd";
  };
  module = import ../../nix/module.nix { inherit config lib pkgs; };
  # mkMerge [ system service, user services, the CLI ], each under its mkIf.
  parts = module.config.contents;
  system = builtins.elemAt parts 0;
  user = builtins.elemAt parts 1;
  shared = builtins.elemAt parts 2;
  content = system.content;
  service = content.systemd.services.unitwatch;
  userService = user.content.systemd.user.services.unitwatch;
  failedOf = part: map (assertion: assertion.message) (builtins.filter (assertion: !assertion.assertion) part.content.assertions);
in
{
  failed = if system.condition then failedOf system else [ ];
  systemEnabled = system.condition;
  userEnabled = user.condition;
  cliInstalled = shared.condition;
  userFailed = if user.condition then failedOf user else [ ];
  user =
    if user.condition then
      {
        inherit (userService) after wants wantedBy;
        conditionUser = userService.unitConfig.ConditionUser;
        execStart = builtins.head (builtins.split "\n" userService.serviceConfig.ExecStart)
          + builtins.elemAt (builtins.match ".*#end\n(.*)" userService.serviceConfig.ExecStart) 0;
        launcher = builtins.elemAt (builtins.match ".*#script\n(.*)#end\n.*" userService.serviceConfig.ExecStart) 0;
        mkDefault = builtins.filter (name: (userService.serviceConfig.${name}._type or null) == "override") (
          builtins.attrNames userService.serviceConfig
        );
        fixed = builtins.filter (name: !((userService.serviceConfig.${name}._type or null) == "override")) (
          builtins.attrNames userService.serviceConfig
        );
      }
    else
      null;
  mkDefault = builtins.filter (name: (service.serviceConfig.${name}._type or null) == "override") (
    builtins.attrNames service.serviceConfig
  );
  fixed = builtins.filter (name: !((service.serviceConfig.${name}._type or null) == "override")) (
    builtins.attrNames service.serviceConfig
  );
  inherit (service) environment after wants;
  loadCredential = service.serviceConfig.LoadCredential or [ ];
  packageDefault = module.options.services.unitwatch.package.default;
  # The values, with mkDefault's wrapper taken off: what the unit file gets.
  serviceValues = builtins.mapAttrs (
    _: value: if (value._type or null) == "override" then value.content else value
  ) service.serviceConfig;
  cli = (builtins.head shared.content.environment.systemPackages).text;
}
