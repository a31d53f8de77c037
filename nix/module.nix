# services.unitwatch: one daemon that mails when any systemd unit fails.
# The unit's settings and hardening come from ./service.json, the same file the
# integration tests install into a real systemd, so what is tested is what runs here.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    mkEnableOption
    mkOption
    mkIf
    mkDefault
    types
    ;

  cfg = config.services.unitwatch;
  definition = lib.importJSON ./service.json;

  settingsValue = types.oneOf [
    types.str
    types.int
    types.bool
    (types.listOf types.str)
  ];

  # The daemon reads plain environment strings: lists as comma-separated values.
  renderSetting =
    value:
    if builtins.isList value then
      lib.concatStringsSep "," value
    else if builtins.isBool value then
      lib.boolToString value
    else
      toString value;

  badNames = lib.filter (name: builtins.match "UNITWATCH_[A-Z0-9_]+" name == null) (
    lib.attrNames cfg.settings
  );

  # These have their own NixOS options; the rest goes to serviceConfig as written.
  unitOptionNames = {
    Description = "description";
    After = "after";
    Wants = "wants";
    Requires = "requires";
    Before = "before";
  };
  unitSection = definition.unit;

  journalGroup = "systemd-journal";
  supplementaryGroups = lib.filter (group: cfg.journalAccess || group != journalGroup) (
    lib.toList (definition.service.SupplementaryGroups or [ ])
  );
  serviceSettings =
    lib.removeAttrs definition.service [ "SupplementaryGroups" ]
    // lib.optionalAttrs (supplementaryGroups != [ ]) { SupplementaryGroups = supplementaryGroups; };
  otherUnitSettings = lib.removeAttrs unitSection (lib.attrNames unitOptionNames);
in
{
  options.services.unitwatch = {
    enable = mkEnableOption "unitwatch, which mails when a systemd unit fails";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The unitwatch package to run.";
    };

    settings = mkOption {
      type = types.attrsOf settingsValue;
      default = { };
      example = lib.literalExpression ''
        {
          UNITWATCH_TO = [ "ops@example.org" ];
          UNITWATCH_FROM = "unitwatch@example.org";
          UNITWATCH_SMTP_URL = "smtps://unitwatch@mail.example.org:465";
        }
      '';
      description = ''
        `UNITWATCH_*` variables for the daemon, placed in the unit's environment and so in the
        world-readable store: never put a secret here, use {option}`environmentFile` or
        {option}`smtpPasswordFile`. Lists are joined with commas, booleans become
        `true`/`false`. See docs/configuration.md for every variable.
      '';
    };

    environmentFile = mkOption {
      # A string, not a path: a path literal would copy the secret into the store.
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/run/secrets/unitwatch.env";
      description = ''
        File of `UNITWATCH_*=value` lines read by systemd when the service starts, for
        anything that must stay out of the store. Its values override {option}`settings`.
      '';
    };

    smtpPasswordFile = mkOption {
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/run/secrets/unitwatch-smtp-password";
      description = ''
        File holding the SMTP password, passed to the daemon as the systemd credential
        `smtp-password`, so the file can stay readable by root only.
      '';
    };

    journalAccess = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether the daemon joins the `systemd-journal` group, so mails carry the failed
        unit's log lines. Without it a mail carries `systemctl status` only.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = badNames == [ ];
        message = "services.unitwatch.settings: names must match UNITWATCH_[A-Z0-9_]+, got: ${lib.concatStringsSep ", " badNames}";
      }
      {
        assertion = cfg.settings ? UNITWATCH_TO || cfg.environmentFile != null;
        message = "services.unitwatch: set settings.UNITWATCH_TO, or provide it in environmentFile.";
      }
    ];

    # DynamicUser= alone is not enough: dbus-daemon cannot resolve a dynamic user and drops
    # its connection. With a static account of the same name systemd uses that account and
    # keeps all of DynamicUser='s sandboxing.
    users.users.${definition.service.User} = {
      isSystemUser = true;
      group = definition.service.Group;
      description = "unitwatch daemon";
    };
    users.groups.${definition.service.Group} = { };

    systemd.services.unitwatch = {
      description = unitSection.Description;
      after = unitSection.After or [ ];
      wants = unitSection.Wants or [ ];
      requires = unitSection.Requires or [ ];
      before = unitSection.Before or [ ];
      unitConfig = otherUnitSettings;
      wantedBy = definition.install.WantedBy;

      # systemd-notify (readiness), systemctl (status) and journalctl (log lines), matching
      # the systemd that runs the unit.
      path = [ config.systemd.package ];

      environment = lib.mapAttrs (_: renderSetting) cfg.settings;

      # mkDefault, so a site can relax one setting (and say why) without a fork.
      # MemoryDenyWriteExecute stays off as service.json says: V8's JIT needs it.
      serviceConfig =
        lib.mapAttrs (_: mkDefault) serviceSettings
        // {
          ExecStart = "${lib.getExe cfg.package} run";
        }
        // lib.optionalAttrs (cfg.environmentFile != null) {
          EnvironmentFile = cfg.environmentFile;
        }
        // lib.optionalAttrs (cfg.smtpPasswordFile != null) {
          LoadCredential = "smtp-password:${cfg.smtpPasswordFile}";
        };
    };
  };
}
