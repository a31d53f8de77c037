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

  # The names the validator knows, and how each may be written, generated from src/core/config.ts
  # (`npm run nix-variables`; a test fails if it drifts). A typo fails evaluation, not the start.
  variables = (lib.importJSON ./variables.json).variables;
  kindAccepts =
    kind: value:
    builtins.isString value
    || (kind == "list" && builtins.isList value && lib.all builtins.isString value)
    || (kind == "int" && builtins.isInt value)
    || (kind == "bool" && builtins.isBool value);
  kindText = {
    string = "a string";
    list = "a string or a list of strings";
    int = "a string or an integer";
    bool = "a string or a boolean";
  };
  settingNames = lib.attrNames cfg.settings;
  unknownNames = lib.filter (name: !(variables ? ${name})) settingNames;
  badValues = lib.filter (
    name: variables ? ${name} && !(kindAccepts variables.${name} cfg.settings.${name})
  ) settingNames;
  environment = lib.mapAttrs (_: renderSetting) cfg.settings;

  # Fixed by what the daemon is, not site policy: overriding these breaks it rather than relaxing it.
  fixedKeys = [
    "Type"
    "NotifyAccess"
    "User"
    "Group"
    "DynamicUser"
    "StateDirectory"
    "RestartPreventExitStatus"
  ];

  # `unitwatch` for root, with the service's configuration: its settings, environmentFile and SMTP
  # password, so `unitwatch check-config`, `test-email` and `check` test what the service runs.
  cli = pkgs.writeShellScriptBin "unitwatch" ''
    if [ "$(id -u)" != 0 ]; then
      # The environmentFile and the password are root's; without them, the plain CLI.
      exec ${lib.getExe cfg.package} "$@"
    fi
    if [ "''${1-}" = run ]; then
      echo "unitwatch: the daemon runs as unitwatch.service (systemctl start unitwatch)" >&2
      exit 64
    fi
    ${lib.concatStringsSep "\n" (
      lib.mapAttrsToList (name: value: "export ${name}=${lib.escapeShellArg value}") environment
    )}
    export STATE_DIRECTORY=/var/lib/unitwatch
    ${lib.optionalString (cfg.smtpPasswordFile != null)
      "export UNITWATCH_SMTP_PASSWORD_FILE=${lib.escapeShellArg cfg.smtpPasswordFile}"
    }
    exec ${lib.getExe cfg.package} "$@" ${
      lib.optionalString (cfg.environmentFile != null) "--env-file ${lib.escapeShellArg cfg.environmentFile}"
    }
  '';

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
  # Secrets reach the daemon as systemd credentials, so their files can stay root-only.
  credentials = lib.filter (entry: entry != null) [
    (if cfg.smtpPasswordFile != null then "smtp-password:${cfg.smtpPasswordFile}" else null)
    (if cfg.webhookSecretFile != null then "webhook-secret:${cfg.webhookSecretFile}" else null)
    (if cfg.ntfyTokenFile != null then "ntfy-token:${cfg.ntfyTokenFile}" else null)
  ];
in
{
  options.services.unitwatch = {
    enable = mkEnableOption "unitwatch, which mails when a systemd unit fails";

    package =
      lib.mkPackageOption
        (pkgs // { unitwatch = pkgs.unitwatch or (pkgs.callPackage ./package.nix { }); })
        "unitwatch"
        {
          extraDescription = "Unless an overlay provides `pkgs.unitwatch`, the package built from this repository's `nix/package.nix`.";
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
        `true`/`false`. Names and value types are checked at evaluation against
        `nix/variables.json`, generated from the daemon's validator. See docs/configuration.md
        for every variable.
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

    webhookSecretFile = mkOption {
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/run/secrets/unitwatch-webhook-secret";
      description = ''
        File holding the key every webhook request is signed with (HMAC-SHA256, see
        docs/channels.md), passed to the daemon as the systemd credential `webhook-secret`.
      '';
    };

    ntfyTokenFile = mkOption {
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/run/secrets/ntfy-token";
      description = ''
        With `UNITWATCH_WEBHOOK_FORMAT = "ntfy"`: file holding the ntfy access token, passed to
        the daemon as the systemd credential `ntfy-token`.
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
        assertion = unknownNames == [ ];
        message = "services.unitwatch.settings: not a unitwatch variable: ${lib.concatStringsSep ", " unknownNames} (known: ${lib.concatStringsSep ", " (lib.attrNames variables)})";
      }
      {
        assertion = badValues == [ ];
        message = "services.unitwatch.settings: wrong type: ${
          lib.concatMapStringsSep ", " (name: "${name} must be ${kindText.${variables.${name}}}") badValues
        }";
      }
      {
        assertion =
          cfg.settings ? UNITWATCH_TO || cfg.settings ? UNITWATCH_WEBHOOK_URL || cfg.environmentFile != null;
        message = "services.unitwatch: set settings.UNITWATCH_TO (mail) or settings.UNITWATCH_WEBHOOK_URL, or provide them in environmentFile.";
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

    environment.systemPackages = [ cli ];

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

      inherit environment;

      # Hardening and timings with mkDefault, so a site can relax one (and say why) without a fork;
      # fixedKeys without, as they are what the daemon needs. MemoryDenyWriteExecute stays off as
      # service.json says: V8's JIT needs it.
      serviceConfig =
        lib.mapAttrs (
          name: value: if lib.elem name fixedKeys then value else mkDefault value
        ) serviceSettings
        // {
          ExecStart = "${lib.getExe cfg.package} run";
        }
        // lib.optionalAttrs (cfg.environmentFile != null) {
          EnvironmentFile = cfg.environmentFile;
        }
        // lib.optionalAttrs (credentials != [ ]) {
          LoadCredential = credentials;
        };
    };
  };
}
