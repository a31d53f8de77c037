# services.unitwatch: one daemon that mails when any systemd unit fails.
# The unit's settings and hardening come from ./service.json, the same file the
# integration tests install into a real systemd, so what is tested is what runs here.
# services.unitwatch.userServices: the same daemon as a user service (`unitwatch run --user`) in
# the manager of each listed user, from ./user-service.json, with that user's own configuration.
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
    mkMerge
    types
    ;

  cfg = config.services.unitwatch;

  # A file named by its absolute path as a string, never a path literal, which would copy a secret
  # into the world-readable store.
  fileOption =
    example: description:
    mkOption {
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      inherit example description;
    };
  definition = lib.importJSON ./service.json;
  userDefinition = lib.importJSON ./user-service.json;

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
  unknownNamesIn = settings: lib.filter (name: !(variables ? ${name})) (lib.attrNames settings);
  badValuesIn =
    settings:
    lib.filter (name: variables ? ${name} && !(kindAccepts variables.${name} settings.${name})) (
      lib.attrNames settings
    );
  # The same checks for the system service and for each user's service, named by where they are.
  settingsAssertions = where: settings: environmentFile: [
    {
      assertion = unknownNamesIn settings == [ ];
      message = "${where}.settings: not a unitwatch variable: ${lib.concatStringsSep ", " (unknownNamesIn settings)} (known: ${lib.concatStringsSep ", " (lib.attrNames variables)})";
    }
    {
      assertion = badValuesIn settings == [ ];
      message = "${where}.settings: wrong type: ${
        lib.concatMapStringsSep ", " (name: "${name} must be ${kindText.${variables.${name}}}") (
          badValuesIn settings
        )
      }";
    }
    {
      assertion =
        settings ? UNITWATCH_TO
        || settings ? UNITWATCH_WEBHOOK_URL
        || settings ? UNITWATCH_ALERTMANAGER_URL
        || environmentFile != null;
      message = "${where}: set settings.UNITWATCH_TO (mail), settings.UNITWATCH_WEBHOOK_URL or settings.UNITWATCH_ALERTMANAGER_URL, or provide them in environmentFile.";
    }
  ];
  environment = lib.mapAttrs (_: renderSetting) cfg.settings;
  exportsOf =
    settings:
    lib.concatStringsSep "\n" (
      lib.mapAttrsToList (name: value: "export ${name}=${lib.escapeShellArg (renderSetting value)}") settings
    );

  # One user unit serves every listed user (ConditionUser=); this picks the user's own settings and
  # environment file, which the daemon reads itself (--env-file), so it may live in the user's home.
  userNames = lib.attrNames cfg.userServices;
  userRun =
    name:
    let
      user = cfg.userServices.${name};
    in
    ''
      ${exportsOf user.settings}
      exec ${lib.getExe cfg.package} "$@" ${
        lib.optionalString (user.environmentFile != null) "--env-file ${lib.escapeShellArg user.environmentFile}"
      }'';
  userCases = lib.concatStrings (
    map (name: ''
      ${lib.escapeShellArg name})
        ${userRun name}
        ;;
    '') userNames
  );
  userLauncher = pkgs.writeShellScript "unitwatch-user-service" ''
    case "$USER" in
    ${userCases}
    esac
    echo "unitwatch: no services.unitwatch.userServices entry for user $USER" >&2
    exit 78
  '';

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
  # A listed user typing `unitwatch … --user` gets their own service's configuration the same way;
  # `run --user` is refused there, since their user service is that daemon.
  cli = pkgs.writeShellScriptBin "unitwatch" ''
    if [ "$(id -u)" != 0 ]; then
      case " $* " in
      *" --user "*)
        case "$(id -un)" in
        ${lib.concatStrings (
          map (name: ''
            ${lib.escapeShellArg name})
              if [ "''${1-}" = run ]; then
                echo "unitwatch: your daemon is the user service unitwatch.service (systemctl --user start unitwatch)" >&2
                exit 64
              fi
              ${userRun name}
              ;;
          '') userNames
        )}
        esac
        ;;
      esac
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
  # Without notify, systemd takes the daemon as started once it is exec'd: no readiness, no
  # STATUS=, no watchdog, and so no NotifyAccess=all (see the option).
  withoutNotify = [
    "NotifyAccess"
    "WatchdogSec"
  ];
  serviceSettings =
    lib.removeAttrs definition.service ([ "SupplementaryGroups" ] ++ lib.optionals (!cfg.notify) withoutNotify)
    // lib.optionalAttrs (supplementaryGroups != [ ]) { SupplementaryGroups = supplementaryGroups; }
    // lib.optionalAttrs (!cfg.notify) { Type = "exec"; };
  otherUnitSettings = lib.removeAttrs unitSection (lib.attrNames unitOptionNames);
  # Secrets reach the daemon as systemd credentials, so their files can stay root-only.
  credentials = lib.filter (entry: entry != null) [
    (if cfg.smtpPasswordFile != null then "smtp-password:${cfg.smtpPasswordFile}" else null)
    (if cfg.webhookSecretFile != null then "webhook-secret:${cfg.webhookSecretFile}" else null)
    (if cfg.ntfyTokenFile != null then "ntfy-token:${cfg.ntfyTokenFile}" else null)
  ];
  # ExecStart comes from here, not from the definition: the launcher adds `run --user`.
  userFixedKeys = [
    "Type"
    "NotifyAccess"
    "StateDirectory"
    "RestartPreventExitStatus"
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

    environmentFile = fileOption "/run/secrets/unitwatch.env" ''
        File of `UNITWATCH_*=value` lines read by systemd when the service starts, for
        anything that must stay out of the store. Its values override {option}`settings`.
    '';

    smtpPasswordFile = fileOption "/run/secrets/unitwatch-smtp-password" ''
        File holding the SMTP password, passed to the daemon as the systemd credential
        `smtp-password`, so the file can stay readable by root only.
    '';

    userServices = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            settings = mkOption {
              type = types.attrsOf settingsValue;
              default = { };
              example = lib.literalExpression ''{ UNITWATCH_TO = "alice@example.org"; }'';
              description = ''
                `UNITWATCH_*` variables for this user's daemon, checked as {option}`settings` is.
                They land in the world-readable store: no secrets here.
              '';
            };
            environmentFile = fileOption "/home/alice/.config/unitwatch/unitwatch.env" ''
                File of `UNITWATCH_*=value` lines read by the daemon itself (`--env-file`) as this
                user, so it may be a file the user owns (mode 0600). Its values override
                {option}`settings`. An SMTP password goes in a file it names with
                `UNITWATCH_SMTP_PASSWORD_FILE`.
            '';
          };
        }
      );
      default = { };
      example = lib.literalExpression ''
        {
          alice = {
            settings.UNITWATCH_TO = "alice@example.org";
            settings.UNITWATCH_SMTP_URL = "smtp://mail.example.org:587";
            environmentFile = "/home/alice/.config/unitwatch/unitwatch.env";
          };
        }
      '';
      description = ''
        Users (by name) whose own service manager runs unitwatch as the user service
        `unitwatch.service` (`unitwatch run --user`): it watches that user's units on their
        session bus and mails about theirs only. Independent of {option}`enable`. The service
        runs while the user's manager does; `users.users.<name>.linger = true` keeps it running
        without a login.
      '';
    };

    webhookSecretFile = fileOption "/run/secrets/unitwatch-webhook-secret" ''
        File holding the key every webhook request is signed with (HMAC-SHA256, see
        docs/channels.md), passed to the daemon as the systemd credential `webhook-secret`.
    '';

    ntfyTokenFile = fileOption "/run/secrets/ntfy-token" ''
        With `UNITWATCH_WEBHOOK_FORMAT = "ntfy"`: file holding the ntfy access token, passed to
        the daemon as the systemd credential `ntfy-token`.
    '';

    notify = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether the daemon runs as `Type=notify`: it reports readiness once it is on the bus,
        keeps a `STATUS=` line (shown by `systemctl status unitwatch`) and feeds a 2 min
        watchdog, so a hung daemon, or one that has lost the bus, is restarted. Node cannot send
        the notifications from its main process, so this needs `NotifyAccess=all`, which
        `systemd-analyze security` counts: 1.3 with it, 1.1 without. `false` makes it
        `Type=exec` and trades those three for the lower score; see docs/nixos.md.
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

  config = mkMerge [
    (mkIf cfg.enable {
      assertions = settingsAssertions "services.unitwatch" cfg.settings cfg.environmentFile;

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
    })

    (mkIf (userNames != [ ]) {
      assertions = lib.concatLists (
        map (
          name:
          settingsAssertions "services.unitwatch.userServices.${name}" cfg.userServices.${name}.settings
            cfg.userServices.${name}.environmentFile
        ) userNames
      );

      # A user unit, in every user's manager, started only for the listed users. The hardening of
      # user-service.json is what works in an unprivileged manager; that file says what is left out.
      systemd.user.services.unitwatch = {
        description = userDefinition.unit.Description;
        after = userDefinition.unit.After or [ ];
        wants = userDefinition.unit.Wants or [ ];
        unitConfig = lib.removeAttrs userDefinition.unit (lib.attrNames unitOptionNames) // {
          ConditionUser = map (name: "|${name}") userNames;
        };
        wantedBy = userDefinition.install.WantedBy;
        path = [ config.systemd.package ];
        serviceConfig =
          lib.mapAttrs (
            name: value: if lib.elem name userFixedKeys then value else mkDefault value
          ) userDefinition.service
          // {
            ExecStart = "${userLauncher} run --user";
          };
      };
    })

    (mkIf (cfg.enable || userNames != [ ]) {
      environment.systemPackages = [ cli ];
    })
  ];
}
