//! Confinement of a command upstream, applied between fork and exec with the kernel's own
//! facilities, no helper binary and no root needed:
//! - a user namespace of its own (the same uid and gid mapped), so its process limit counts
//!   its processes alone and it holds no capability outside;
//! - `network: none`: a network namespace of its own, with no interface up;
//! - `network: {hosts: […]}`: a network namespace of its own with loopback up and one relay
//!   on it to the gateway's egress proxy, which lets through those hosts alone (`egress`);
//! - Landlock: reads (and executes) beneath the system's library and certificate paths and
//!   the granted ones, writes beneath the granted ones only; TCP connections only to granted
//!   ports; no signals to, and no abstract sockets of, processes outside;
//! - seccomp: the system calls a tool server has no use for and sandbox escapes are made of
//!   (ptrace, mount, namespaces, keyrings, BPF, module loading…) fail with EPERM;
//! - rlimits: private writable memory, CPU time, processes, file size.
//!
//! The gateway starts a confined server through its own binary (`gatehouse __sandbox
//! PROFILE -- COMMAND ARGS…`): that launcher, single-threaded and before anything else,
//! confines itself and then executes the server, which inherits every restriction. A
//! profile this kernel cannot enforce stops the launcher with the reason on stderr (the
//! gateway's log): the server never runs unconfined.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gatehouse_config::{SandboxNetwork, SandboxSpec};
use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, Scope, path_beneath_rules,
};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

/// The Landlock ABI the profile needs: filesystem, TCP ports, scoping (ABI 6).
const LANDLOCK: ABI = ABI::V6;

/// What every confined server may read: the dynamic linker's libraries and cache, the
/// system's certificates, time zones and name service files. Not /etc as a whole (the
/// gateway's config may live there), not /proc (the gateway's environment is there).
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/mime.types",
];

/// Devices every server may read and write.
const SYSTEM_DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

/// System calls denied (EPERM) to every confined server.
const DENIED_SYSCALLS: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
];

/// Everything the profile grants reading, with the command itself and its directory.
fn read_paths(spec: &SandboxSpec, command: &Path, cwd: Option<&Path>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = SYSTEM_READ
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    out.extend(spec.read.iter().cloned());
    // The program to run, at its real path (a venv's `python` is a link elsewhere).
    if let Ok(real) = std::fs::canonicalize(command) {
        out.push(real);
    }
    if let Some(d) = cwd {
        out.push(d.to_path_buf());
    }
    out
}

/// Resolves a command as `execvp` would, with the child's `PATH`.
fn resolve(command: &str, env: &[(String, String)]) -> PathBuf {
    if command.contains('/') {
        return PathBuf::from(command);
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path.split(':')
        .map(|d| Path::new(d).join(command))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(command))
}

/// The launcher's arguments for a confined server: the profile (JSON), then the command.
/// `egress` is the gateway's proxy socket for a server allowed some hosts.
pub(crate) fn launcher_args(
    spec: &SandboxSpec,
    egress: Option<&Path>,
    command: &str,
    args: &[String],
) -> Vec<String> {
    let network = match &spec.network {
        SandboxNetwork::None => serde_json::json!("none"),
        SandboxNetwork::Host => serde_json::json!("host"),
        SandboxNetwork::Connect(p) => serde_json::json!({ "connect": p }),
        SandboxNetwork::Hosts(rules) => serde_json::json!({
            "hosts": rules.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "proxy": egress,
        }),
    };
    let profile = serde_json::json!({
        "read": spec.read,
        "write": spec.write,
        "network": network,
        "memory_mb": spec.memory_mb,
        "cpu_secs": spec.cpu_secs,
        "processes": spec.processes,
        "file_size_mb": spec.file_size_mb,
    });
    let mut out = vec![
        LAUNCHER.to_owned(),
        profile.to_string(),
        "--".to_owned(),
        command.to_owned(),
    ];
    out.extend(args.iter().cloned());
    out
}

/// The hidden subcommand that confines itself and executes the server.
pub const LAUNCHER: &str = "__sandbox";

/// The profile, and the egress proxy's socket when the profile allows hosts.
fn profile_from(json: &str) -> Result<(SandboxSpec, Option<PathBuf>), String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let paths = |k: &str| -> Vec<PathBuf> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(PathBuf::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let proxy = v["network"]["proxy"].as_str().map(PathBuf::from);
    let network = match &v["network"] {
        serde_json::Value::String(s) if s == "host" => SandboxNetwork::Host,
        serde_json::Value::Object(o) if o.contains_key("hosts") => SandboxNetwork::Hosts(
            o["hosts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|h| h.as_str())
                        .map(gatehouse_config::EgressRule::parse)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
        ),
        serde_json::Value::Object(o) => SandboxNetwork::Connect(
            o.get("connect")
                .and_then(|c| c.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_u64())
                        .filter_map(|p| u16::try_from(p).ok())
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => SandboxNetwork::None,
    };
    if matches!(network, SandboxNetwork::Hosts(_)) && proxy.is_none() {
        return Err("network.proxy (the egress proxy's socket)".into());
    }
    let n = |k: &str| v[k].as_u64();
    let spec = SandboxSpec {
        read: paths("read"),
        write: paths("write"),
        network,
        memory_mb: n("memory_mb").ok_or("memory_mb")?,
        cpu_secs: n("cpu_secs"),
        processes: n("processes").ok_or("processes")?,
        file_size_mb: n("file_size_mb").ok_or("file_size_mb")?,
    };
    Ok((spec, proxy))
}

/// Builds the Landlock ruleset and the seccomp program for a profile. Fails when this
/// kernel cannot enforce it or a granted path does not exist.
fn build(
    spec: &SandboxSpec,
    program: &Path,
    cwd: Option<&Path>,
) -> Result<(RulesetCreated, BpfProgram), String> {
    let refused = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(LANDLOCK))
        .map_err(|e| refused("Landlock (filesystem)", &e))?
        .scope(Scope::from_all(LANDLOCK))
        .map_err(|e| refused("Landlock (scoping)", &e))?;
    if spec.network != SandboxNetwork::Host {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(LANDLOCK))
            .map_err(|e| refused("Landlock (network)", &e))?;
    }
    let mut created = ruleset
        .create()
        .map_err(|e| refused("Landlock is not available on this kernel", &e))?;
    for p in spec.read.iter().chain(&spec.write) {
        if !p.exists() {
            return Err(format!("granted path {} does not exist", p.display()));
        }
    }
    created = created
        .add_rules(path_beneath_rules(
            read_paths(spec, program, cwd),
            AccessFs::from_read(LANDLOCK),
        ))
        .map_err(|e| refused("Landlock (read grants)", &e))?
        .add_rules(path_beneath_rules(
            &spec.write,
            AccessFs::from_all(LANDLOCK),
        ))
        .map_err(|e| refused("Landlock (write grants)", &e))?
        .add_rules(path_beneath_rules(
            SYSTEM_DEVICES.iter().filter(|d| Path::new(d).exists()),
            AccessFs::ReadFile | AccessFs::WriteFile,
        ))
        .map_err(|e| refused("Landlock (devices)", &e))?;
    let ports = match &spec.network {
        SandboxNetwork::Connect(ports) => ports.as_slice(),
        // The relay to the egress proxy is the only thing to connect to.
        SandboxNetwork::Hosts(_) => &[super::egress::RELAY_PORT],
        SandboxNetwork::None | SandboxNetwork::Host => &[],
    };
    for port in ports {
        created = created
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(|e| refused("Landlock (ports)", &e))?;
    }
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        DENIED_SYSCALLS.iter().map(|s| (*s, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH
            .try_into()
            .map_err(|e| refused("seccomp", &e))?,
    )
    .map_err(|e| refused("seccomp", &e))?;
    let seccomp: BpfProgram = filter.try_into().map_err(|e| refused("seccomp", &e))?;
    Ok((created, seccomp))
}

/// Whether this kernel can enforce a profile like `spec` (for `gatehouse check`).
pub fn enforceable(spec: &SandboxSpec) -> Result<(), String> {
    build(spec, Path::new("/bin/true"), None).map(|_| ())
}

/// Where a root gateway keeps each confined server's process limit: a pids cgroup of its
/// own (cgroup v2, else the v1 pids hierarchy), named by the server's pid.
fn pids_cgroup_root() -> Option<PathBuf> {
    let v2 = Path::new("/sys/fs/cgroup");
    let v2_pids = std::fs::read_to_string(v2.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "pids"));
    let base = if v2_pids {
        v2.to_path_buf()
    } else {
        Path::new("/sys/fs/cgroup/pids").to_path_buf()
    };
    base.join("pids.max")
        .exists()
        .then(|| base.join("gatehouse"))
        .or_else(|| base.exists().then(|| base.join("gatehouse")))
}

/// The process limit of a server started by a root gateway: the kernel does not apply
/// RLIMIT_NPROC to uid 0, so the limit is a pids cgroup the launcher moves itself into.
fn limit_processes_as_root(max: u64) -> Result<(), String> {
    let root = pids_cgroup_root().ok_or("no pids cgroup controller is mounted")?;
    let dir = root.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("pids.max"), max.to_string())
        .map_err(|e| format!("{}: {e}", dir.join("pids.max").display()))?;
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
        .map_err(|e| format!("{}: {e}", dir.join("cgroup.procs").display()))
}

/// Removes the pids cgroup of a server that ended (a root gateway's; nothing otherwise),
/// and any other left empty (a gateway killed before it could remove its servers').
pub(crate) fn forget_server(pid: u32) {
    let Some(root) = pids_cgroup_root() else {
        return;
    };
    let _ = std::fs::remove_dir(root.join(pid.to_string()));
    if let Ok(dirs) = std::fs::read_dir(&root) {
        for d in dirs.flatten() {
            if d.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            {
                // Fails while the cgroup holds a process: only empty ones go.
                let _ = std::fs::remove_dir(d.path());
            }
        }
    }
}

/// The launcher: confines this (single-threaded) process per `profile` and executes
/// `command`. Returns only on failure, with the reason.
pub fn exec_confined(profile: &str, command: &str, args: &[String]) -> String {
    use rustix::process::{Resource, Rlimit, getgid, getuid, setrlimit};
    use rustix::thread::UnshareFlags;
    use std::os::unix::process::CommandExt;
    let (spec, proxy) = match profile_from(profile) {
        Ok(s) => s,
        Err(e) => return format!("unreadable sandbox profile: {e}"),
    };
    let program = resolve(command, &std::env::vars().collect::<Vec<_>>());
    let cwd = std::env::current_dir().ok();
    let (ruleset, seccomp) = match build(&spec, &program, cwd.as_deref()) {
        Ok(x) => x,
        Err(e) => return format!("sandbox cannot be enforced: {e}"),
    };
    let (uid, gid) = (getuid().as_raw(), getgid().as_raw());
    if uid == 0
        && let Err(e) = limit_processes_as_root(spec.processes)
    {
        return format!("sandbox cannot be enforced: process limit: {e}");
    }
    let mut flags = UnshareFlags::NEWUSER;
    if matches!(
        spec.network,
        SandboxNetwork::None | SandboxNetwork::Hosts(_)
    ) {
        flags |= UnshareFlags::NEWNET;
    }
    // Namespaces only (no CLONE_FILES, the flag that makes `unshare` unsafe to call), in a
    // process that has one thread.
    #[allow(deprecated)]
    if let Err(e) = rustix::thread::unshare(flags) {
        return format!("sandbox cannot be enforced: namespaces: {e}");
    }
    for (file, data) in [
        ("/proc/self/setgroups", "deny".to_owned()),
        ("/proc/self/uid_map", format!("{uid} {uid} 1")),
        ("/proc/self/gid_map", format!("{gid} {gid} 1")),
    ] {
        if let Err(e) = std::fs::write(file, data) {
            return format!("sandbox cannot be enforced: {file}: {e}");
        }
    }
    // Allowed some hosts: loopback up, and the relay to the gateway's egress proxy on it,
    // started before this process confines itself (the relay is the gateway's own code).
    if let Some(socket) = &proxy {
        if let Err(e) = super::egress::loopback_up() {
            return format!("sandbox cannot be enforced: {e}");
        }
        if let Err(e) = start_relay(socket) {
            return format!("sandbox cannot be enforced: egress relay: {e}");
        }
    }
    let mb = |n: u64| n.saturating_mul(1 << 20);
    let mut limits = vec![
        (Resource::Data, mb(spec.memory_mb)),
        (Resource::Nproc, spec.processes),
        (Resource::Fsize, mb(spec.file_size_mb)),
        (Resource::Core, 0),
    ];
    if let Some(cpu) = spec.cpu_secs {
        limits.push((Resource::Cpu, cpu));
    }
    for (r, v) in limits {
        let lim = Rlimit {
            current: Some(v),
            maximum: Some(v),
        };
        if let Err(e) = setrlimit(r, lim) {
            return format!("sandbox cannot be enforced: limit {r:?}: {e}");
        }
    }
    if let Err(e) = ruleset.restrict_self() {
        return format!("sandbox cannot be enforced: Landlock: {e}");
    }
    if let Err(e) = seccompiler::apply_filter(&seccomp) {
        return format!("sandbox cannot be enforced: seccomp: {e}");
    }
    let e = std::process::Command::new(command).args(args).exec();
    format!("cannot run {command}: {e}")
}

/// Starts the egress relay in this (new) network namespace and waits until it listens. It
/// ends with the server's process group.
fn start_relay(socket: &Path) -> Result<(), String> {
    use std::io::BufRead;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut relay = std::process::Command::new(exe)
        .arg(super::egress::RELAY)
        .arg(socket)
        .arg(super::egress::RELAY_PORT.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = relay.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    // One short line; the relay writes nothing else.
    #[allow(clippy::disallowed_methods)]
    let read = std::io::BufReader::new(out).read_line(&mut line);
    match read {
        Ok(_) if line.trim() == "ready" => Ok(()),
        _ => {
            let _ = relay.kill();
            Err("did not start".into())
        }
    }
}

/// The effective profile, as `gatehouse check` shows it.
pub fn describe(spec: &SandboxSpec) -> String {
    let list = |v: &[PathBuf]| {
        if v.is_empty() {
            "nothing".to_owned()
        } else {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let network = match &spec.network {
        SandboxNetwork::None => "none (own network namespace)".to_owned(),
        SandboxNetwork::Host => "host (unrestricted)".to_owned(),
        SandboxNetwork::Connect(p) => format!(
            "TCP connect to ports {} only",
            p.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        ),
        SandboxNetwork::Hosts(rules) => format!(
            "own network namespace, out only through the gateway's egress proxy to {}",
            rules
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "read: system libraries and certificates, {}; write: {}; network: {network}; memory {} MiB, processes {}, file size {} MiB, CPU {}; {} system calls denied",
        list(&spec.read),
        list(&spec.write),
        spec.memory_mb,
        spec.processes,
        spec.file_size_mb,
        spec.cpu_secs
            .map_or_else(|| "unlimited".to_owned(), |s| format!("{s} s")),
        DENIED_SYSCALLS.len()
    )
}
