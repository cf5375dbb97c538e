//! stdio upstreams: a supervised child process speaking newline-delimited JSON-RPC, restarted
//! with backoff, given only the environment config grants, its stderr sent to the log.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use gatehouse_protocol::{Limits, Message, decode_message_bytes};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::{Backoff, Link, Upstream, UpstreamError, UpstreamEvent};
use crate::config::TransportSpec;
use crate::line::read_bounded_line;

pub(crate) struct StdioLink {
    tx: ArcSwapOption<mpsc::Sender<Bytes>>,
}

impl StdioLink {
    pub(crate) fn new() -> Self {
        Self {
            tx: ArcSwapOption::empty(),
        }
    }

    pub(crate) async fn send(&self, msg: &Message) -> Result<(), UpstreamError> {
        let Some(tx) = self.tx.load_full() else {
            return Err(UpstreamError::Unavailable);
        };
        let mut bytes = msg.to_bytes();
        bytes.push(b'\n');
        tx.send(Bytes::from(bytes))
            .await
            .map_err(|_| UpstreamError::Closed)
    }
}

fn spawn_child(spec: &TransportSpec, egress: Option<&Path>) -> std::io::Result<Child> {
    let TransportSpec::Stdio {
        command,
        args,
        env,
        cwd,
        sandbox,
        ..
    } = spec
    else {
        return Err(std::io::Error::other("not a stdio upstream"));
    };
    // Confined: started through the gateway's own binary, which confines itself and then
    // runs the server (see `sandbox`).
    let mut cmd = match sandbox {
        Some(s) => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(super::sandbox::launcher_args(s, egress, command, args));
            c
        }
        None => {
            let mut c = Command::new(command);
            c.args(args);
            c
        }
    };
    cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    if egress.is_some() {
        cmd.envs(super::egress::proxy_env());
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: `npx`, `uvx` and `sh -c` start grandchildren (holding the
        // child's environment, secrets included) that must end with it.
        .process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.spawn()
}

/// Kills a child's whole process group when dropped: on restart, on shutdown, and when
/// the supervising task is cancelled.
struct Group(Option<rustix::process::Pid>);

impl Group {
    fn of(child: &Child) -> Self {
        Group(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw),
        )
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (the group is already gone) is the common case.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// Keeps the child running: spawn, handshake, pump, and on exit restart with backoff.
pub(crate) async fn supervise(up: Arc<Upstream>) {
    let Link::Stdio(link) = &up.link else { return };
    let mut backoff = Backoff::new();
    let name = up.spec.name.clone();
    // A server allowed some hosts reaches them through a proxy of its own, which lives as
    // long as this loop (it is dropped with it, socket and all).
    let egress = match &up.spec.transport {
        TransportSpec::Stdio {
            sandbox: Some(s), ..
        } => match &s.network {
            gatehouse_config::SandboxNetwork::Hosts(rules) => {
                match super::egress::Egress::start(&name, rules, up.shared.events.clone()) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        // Fail closed: without its proxy the server is not started.
                        tracing::error!(upstream = %name, error = %e, "cannot start the egress proxy: the server is not started");
                        return;
                    }
                }
            }
            _ => None,
        },
        _ => None,
    };
    loop {
        // A pinned package is checked against its registry before every start.
        if let TransportSpec::Stdio {
            package: Some(p),
            env,
            ..
        } = &up.spec.transport
            && let Err(e) = super::registry::verify(p, env).await
        {
            tracing::error!(target: "gatehouse::audit", upstream = %name, error = %e, "package not verified: the server is not started");
            backoff.wait().await;
            continue;
        }
        let mut child = match spawn_child(&up.spec.transport, egress.as_ref().map(|e| e.socket())) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(upstream = %name, error = %e, "cannot start upstream process");
                backoff.wait().await;
                continue;
            }
        };
        let group = Group::of(&child);
        let pid = child.id();
        let started = Instant::now();
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            backoff.wait().await;
            continue;
        };
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        let writer = tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if stdin.write_all(&b).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let err_name = name.clone();
        let stderr_task = tokio::spawn(async move {
            let mut r = BufReader::new(stderr);
            let mut line = Vec::new();
            while let Ok(Some(())) = read_bounded_line(&mut r, &mut line, 16 * 1024).await {
                tracing::info!(upstream = %err_name, "stderr: {}", String::from_utf8_lossy(&line));
            }
        });
        link.tx.store(Some(Arc::new(tx)));

        let shared = up.shared.clone();
        let reader_up = up.clone();
        let max = shared.max_message_bytes;
        let reader = async move {
            let mut r = BufReader::with_capacity(64 * 1024, stdout);
            let mut line = Vec::new();
            let limits = Limits {
                max_body_bytes: max,
                max_depth: 128,
                max_batch: 1,
            };
            loop {
                match read_bounded_line(&mut r, &mut line, max).await {
                    Ok(Some(())) => {
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        match decode_message_bytes(&line, &limits) {
                            Ok(msg) => {
                                if let Some(reply) = shared.on_message(msg, None) {
                                    let _ = reader_up.send(reply).await;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(upstream = %shared.name, error = %e, "unreadable line from upstream")
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(upstream = %shared.name, error = %e, "upstream output rejected; restarting");
                        break;
                    }
                }
            }
        };
        let hs_up = up.clone();
        let handshake = async move {
            match hs_up.handshake().await {
                Ok(info) => {
                    tracing::info!(upstream = %hs_up.spec.name, version = %info.version, "upstream ready");
                    hs_up.emit(UpstreamEvent::Ready {
                        upstream: hs_up.spec.name.clone(),
                    });
                    true
                }
                Err(e) => {
                    tracing::error!(upstream = %hs_up.spec.name, error = %e, "upstream handshake failed");
                    false
                }
            }
        };
        tokio::pin!(reader);
        // The child's exit ends the link too: a grandchild that inherited its stdout would
        // otherwise keep the pipe open and the dead child unnoticed.
        tokio::select! {
            _ = &mut reader => {}
            _ = child.wait() => {}
            ok = handshake => {
                if ok {
                    tokio::select! {
                        _ = &mut reader => {}
                        _ = child.wait() => {}
                    }
                }
            }
        }
        link.tx.store(None);
        writer.abort();
        stderr_task.abort();
        let _ = child.start_kill();
        drop(group);
        let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        tracing::warn!(upstream = %name, ?status, "upstream process ended");
        if let (
            Some(pid),
            TransportSpec::Stdio {
                sandbox: Some(_), ..
            },
        ) = (pid, &up.spec.transport)
        {
            super::sandbox::forget_server(pid);
        }
        up.disconnected();
        if started.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        backoff.wait().await;
    }
}
