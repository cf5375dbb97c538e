//! The deployment files as an operator uses them: the Kubernetes overlays rendered by
//! `kubectl kustomize` (every resource present, hardened pods, probes on the gateway's own
//! endpoints, selectors that match, and a config the gateway accepts and refuses to start
//! without its secrets), the systemd unit checked by `systemd-analyze`, and the container
//! image: its build steps read from the Containerfile, and a real image built offline by
//! buildah and run.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::common::{gatehouse_bin, run_ok};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The overlay's resources as `kubectl kustomize` renders them.
fn render(overlay: &str) -> Vec<Value> {
    let dir = deploy().join("kubernetes/overlays").join(overlay);
    let out = StdCommand::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

/// Every `matchLabels` pair is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().expect("labels");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// What both overlays promise, whatever their size.
fn hardened(docs: &[Value]) {
    let deploy = one(docs, "Deployment");
    let pod = &deploy["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(selects(&deploy["spec"]["selector"]["matchLabels"], labels));
    assert!(selects(&one(docs, "Service")["spec"]["selector"], labels));
    assert!(selects(
        &one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        labels
    ));
    let net = &one(docs, "NetworkPolicy")["spec"];
    assert!(selects(&net["podSelector"]["matchLabels"], labels));
    assert_eq!(net["policyTypes"], serde_json::json!(["Ingress", "Egress"]));

    let spec = &pod["spec"];
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(
        one(docs, "ServiceAccount")["automountServiceAccountToken"],
        false
    );
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert!(spec["securityContext"]["runAsUser"].as_u64().unwrap_or(0) > 0);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for r in ["cpu", "memory"] {
        assert!(c["resources"]["requests"][r].is_string(), "request {r}");
    }
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "gatehouse-secrets");
    // The config volume names the generated ConfigMap (its name carries a content hash).
    let cm = one(docs, "ConfigMap");
    let volumes = spec["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == cm["metadata"]["name"]),
        "{volumes:?}"
    );
    // Writable places are volumes, never the image.
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    for path in ["/var/lib/gatehouse", "/tmp"] {
        assert!(mounts.iter().any(|m| m["mountPath"] == path), "{path}");
    }
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    k.sort();
    k
}

#[test]
fn the_single_replica_overlay_keeps_sqlite_on_a_volume() {
    let docs = render("single");
    assert_eq!(
        kinds(&docs),
        [
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ]
    );
    hardened(&docs);
    let deploy = &one(&docs, "Deployment")["spec"];
    assert_eq!(deploy["replicas"], 1);
    // A ReadWriteOnce volume: the old pod stops before the new one mounts it.
    assert_eq!(deploy["strategy"]["type"], "Recreate");
    let data = deploy["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "data")
        .expect("data volume");
    assert_eq!(
        data["persistentVolumeClaim"]["claimName"],
        one(&docs, "PersistentVolumeClaim")["metadata"]["name"]
    );
}

#[test]
fn the_ha_overlay_runs_three_replicas_that_scale_and_stay_up() {
    let docs = render("ha");
    assert_eq!(
        kinds(&docs),
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    hardened(&docs);
    let deploy = &one(&docs, "Deployment")["spec"];
    assert_eq!(deploy["replicas"], 3);
    assert_eq!(deploy["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pdb = &one(&docs, "PodDisruptionBudget")["spec"];
    assert_eq!(pdb["minAvailable"], 2);
    assert!(pdb.get("maxUnavailable").is_none());
    let hpa = &one(&docs, "HorizontalPodAutoscaler")["spec"];
    assert_eq!(hpa["minReplicas"], 3);
    assert_eq!(hpa["scaleTargetRef"]["name"], "gatehouse");
    let monitor = &one(&docs, "ServiceMonitor")["spec"];
    assert_eq!(monitor["endpoints"][0]["path"], "/metrics");
    assert!(selects(
        &monitor["selector"]["matchLabels"],
        &one(&docs, "Service")["metadata"]["labels"]
    ));
    let egress = one(&docs, "NetworkPolicy")["spec"]["egress"].to_string();
    assert!(
        egress.contains("5432") && egress.contains("6379"),
        "{egress}"
    );
}

/// The rendered overlay's `gatehouse.yaml`, written to a file of its own.
fn config_of(overlay: &str, dir: &Path) -> PathBuf {
    let docs = render(overlay);
    let text = one(&docs, "ConfigMap")["data"]["gatehouse.yaml"]
        .as_str()
        .expect("gatehouse.yaml in the ConfigMap")
        .to_owned();
    let path = dir.join(format!("{overlay}.yaml"));
    std::fs::write(&path, text).expect("write");
    path
}

#[tokio::test]
async fn the_manifests_configs_are_accepted_and_refused_without_their_secrets() {
    let dir = std::env::temp_dir().join(format!("gatehouse-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let secrets = [
        (
            "GATEHOUSE_SESSION_KEY",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
        ),
        (
            "GATEHOUSE_API_KEY_PEPPER",
            "cGVwcGVyLXBlcHBlci1wZXBwZXItcGVwcGVyLXBlcHA=",
        ),
        ("GATEHOUSE_ADMIN_TOKEN", "admin-token-from-the-secret"),
        (
            "GATEHOUSE_POSTGRES",
            "host=127.0.0.1 user=postgres dbname=postgres",
        ),
        ("GATEHOUSE_REDIS", "redis://127.0.0.1:6379/0"),
    ];
    for overlay in ["single", "ha"] {
        let cfg = config_of(overlay, &dir);
        let out = run_ok(
            Command::new(gatehouse_bin())
                .arg("check")
                .arg(&cfg)
                .envs(secrets),
            30,
        )
        .await;
        // Default deny: the manifests ship a role section, not open access.
        assert!(
            out.contains("ok (1 upstreams") && out.contains("policies"),
            "{out}"
        );
        // A Secret that lacks a key stops the gateway with the key's name.
        let missing = Command::new(gatehouse_bin())
            .arg("check")
            .arg(&cfg)
            .envs(
                secrets
                    .iter()
                    .filter(|(k, _)| *k != "GATEHOUSE_SESSION_KEY")
                    .copied(),
            )
            .env_remove("GATEHOUSE_SESSION_KEY")
            .output()
            .await
            .expect("runs");
        assert!(!missing.status.success(), "{overlay}");
        assert!(
            String::from_utf8_lossy(&missing.stderr).contains("GATEHOUSE_SESSION_KEY"),
            "{}",
            String::from_utf8_lossy(&missing.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_systemd_unit_is_valid_and_its_exposure_is_low() {
    let unit = std::fs::read_to_string(deploy().join("systemd/gatehouse.service")).expect("unit");
    // `verify` checks that ExecStart exists: point it at the binary under test.
    let dir = std::env::temp_dir().join(format!("gatehouse-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("gatehouse.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/gatehouse", gatehouse_bin()),
    )
    .expect("write");
    let verify = StdCommand::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    // A misspelt directive is only a warning, on stderr: none is allowed.
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // systemd's own exposure score, 0 (locked down) to 10: at most 2.0 ("OK").
    let security = StdCommand::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "{report}");
    assert!(report.contains("Overall exposure level"), "{report}");
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The image's last stage: what runs, as whom, and how it is probed.
fn runtime_stage() -> Vec<String> {
    let file = std::fs::read_to_string(deploy().join("container/Containerfile")).expect("file");
    // Instructions, continuation lines joined, comments dropped.
    let joined = file
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let lines: Vec<String> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("FROM");
    lines[last_from..].to_vec()
}

#[tokio::test]
async fn the_image_runs_the_binary_as_nonroot_with_no_shell_and_a_health_check_that_works() {
    let stage = runtime_stage();
    // Nothing in the runtime stage runs a shell, and it runs as a numeric non-root user.
    assert!(
        stage
            .iter()
            .all(|l| !l.starts_with("RUN ") && !l.starts_with("SHELL ")),
        "{stage:?}"
    );
    let user = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    let check = stage
        .iter()
        .find(|l| l.starts_with("HEALTHCHECK "))
        .expect("HEALTHCHECK");
    let exec = check.split_once("CMD ").expect("CMD").1;
    let argv: Vec<String> = serde_json::from_str(exec).expect("exec form, no shell");
    assert_eq!(argv[1], "health", "{argv:?}");

    // The distroless base carries glibc and libgcc only: the binary needs nothing else.
    let ldd = StdCommand::new("ldd")
        .arg(gatehouse_bin())
        .output()
        .expect("ldd");
    let libs = String::from_utf8_lossy(&ldd.stdout).into_owned();
    for line in libs.lines() {
        let lib = line.split_whitespace().next().unwrap_or("");
        assert!(
            ["linux-vdso.so.1", "libc.so.6", "libm.so.6", "libgcc_s.so.1"].contains(&lib)
                || lib.contains("ld-linux"),
            "the image lacks {lib}: {libs}"
        );
    }

    // The health check itself, against a real gateway: healthy, missing page, nobody there.
    let port = crate::common::free_port();
    let mut gw = Command::new(gatehouse_bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gateway");
    crate::common::wait_port(port).await;
    let probe = |path: String| async move {
        Command::new(gatehouse_bin())
            .args(["health", &path])
            .output()
            .await
            .expect("runs")
            .status
            .success()
    };
    assert!(probe(format!("http://127.0.0.1:{port}/healthz")).await);
    assert!(!probe(format!("http://127.0.0.1:{port}/no-such-page")).await);
    let _ = gw.kill().await;
    let _ = gw.wait().await;
    assert!(!probe(format!("http://127.0.0.1:{port}/healthz")).await);
}

/// `buildah …`, its stdout, or a failure with its stderr.
fn buildah(args: &[&str]) -> Result<String, String> {
    let out = StdCommand::new("buildah")
        .args(args)
        .output()
        .map_err(|e| format!("buildah: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A real image, built offline by buildah from the binary under test (no base image to
/// pull): its configuration is the hardened one, the binary runs inside it with only the
/// libraries the image carries, the health check answers from inside, and there is no shell.
#[tokio::test]
async fn an_image_built_by_buildah_runs_the_gateway_as_nonroot_without_a_shell() {
    let tag = format!("localhost/gatehouse-test:{}", std::process::id());
    let ctx = std::env::temp_dir().join(format!("gatehouse-image-{}", std::process::id()));
    let made = StdCommand::new(deploy().join("container/prebuilt.sh"))
        .arg(gatehouse_bin())
        .arg(&ctx)
        .output()
        .expect("prebuilt.sh");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let ctx_s = ctx.display().to_string();
    buildah(&["bud", "--format", "docker", "-q", "-t", &tag, &ctx_s])
        .expect("buildah bud (scripts/test installs buildah)");
    let _ = std::fs::remove_dir_all(&ctx);

    let inspect: Value =
        serde_json::from_str(&buildah(&["inspect", "--type", "image", &tag]).expect("inspect"))
            .expect("inspect json");
    let cfg = &inspect["Docker"]["config"];
    assert_eq!(cfg["User"], "65532:65532", "{cfg}");
    assert_eq!(
        cfg["Entrypoint"],
        json!(["/usr/local/bin/gatehouse"]),
        "{cfg}"
    );
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        json!([
            "CMD",
            "/usr/local/bin/gatehouse",
            "health",
            "http://127.0.0.1:8080/healthz"
        ]),
        "{cfg}"
    );
    assert!(cfg["Volumes"].get("/var/lib/gatehouse").is_some(), "{cfg}");

    // A gateway on the host; the image's binary probes it (chroot isolation shares the
    // network: this sandbox cannot create namespaces).
    let port = crate::common::free_port();
    let mut gw = Command::new(gatehouse_bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gateway");
    crate::common::wait_port(port).await;
    let ctr = buildah(&["from", "-q", &tag]).expect("from");
    let run = |argv: &[&str]| {
        let mut args = vec!["run", "--isolation", "chroot", ctr.as_str(), "--"];
        args.extend_from_slice(argv);
        buildah(&args)
    };
    let healthy = run(&[
        "/usr/local/bin/gatehouse",
        "health",
        &format!("http://127.0.0.1:{port}/healthz"),
    ]);
    let version = run(&["/usr/local/bin/gatehouse", "--version"]);
    let shell = run(&["/bin/sh", "-c", "true"]);
    let _ = gw.kill().await;
    let _ = gw.wait().await;
    let dead = run(&[
        "/usr/local/bin/gatehouse",
        "health",
        &format!("http://127.0.0.1:{port}/healthz"),
    ]);
    let _ = buildah(&["rm", &ctr]);
    let _ = buildah(&["rmi", "-f", &tag]);
    assert!(healthy.is_ok(), "{healthy:?}");
    assert!(version.is_ok_and(|v| v.starts_with("gatehouse ")));
    assert!(shell.is_err(), "the image has a shell");
    assert!(dead.is_err(), "the health check passed with nobody there");
}
